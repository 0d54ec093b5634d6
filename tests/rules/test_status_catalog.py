"""The status message catalog and its published reference agree, and every entry is usable."""

from __future__ import annotations

import re
from pathlib import Path

from quartermaster.core.status_catalog import CATALOG, catalog_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "status-messages.md"


def test_reference_document_matches_the_catalog() -> None:
    assert DOC.read_text().strip() == catalog_markdown().strip(), (
        "docs/status-messages.md is stale: run `qm status catalog > docs/status-messages.md`"
    )


def test_client_deployment_messages_name_deployment_package_and_program() -> None:
    about_the_policy = {10061, 10080, 10081, 10085}  # refusals of the whole policy or root
    for message in CATALOG.values():
        if message.id >= 10000 and message.id not in about_the_policy:
            assert message.text.startswith("Deployment %1, package %2, program %3"), message.id


def test_every_message_says_what_to_do() -> None:
    for message in CATALOG.values():
        assert message.description and message.action, message.id
        assert not re.search(r"%\d", message.render([f"<{i}>" for i in range(20)])), message.id
