"""A second package named like an existing one (name and version label, in any case) is
created, and the REST answer says why that may confuse (qm prints it on stderr)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient


def _create(api: TestClient, source: Path, name: str, label: str = "") -> dict[str, object]:
    answer = api.post(
        "/api/v1/packages", json={"name": name, "source": str(source), "version_label": label}
    )
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def test_a_package_named_like_another_is_warned(
    api: TestClient, package_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"  # the `package_id` fixture's folder: package "Demo"
    alike = _create(api, source, "DEMO")
    assert alike["warnings"] == [
        f"{package_id} already has the name 'DEMO': lists and deployments will show packages "
        "alike; give this one another name or a version label"
    ]
    assert _create(api, source, "Demo", "2.0")["warnings"] == []
    assert _create(api, source, "Other")["warnings"] == []
