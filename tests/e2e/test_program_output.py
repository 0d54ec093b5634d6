"""A failing program's own last output reaches the site, secrets from its command line masked.

A real site, a real client and a real program that prints a lot and fails: its last lines
are in `qm status messages --json` with the failure (10006, also after the retries run out,
and 10070 when it is stopped), and under the client's row in `qm deploy status --client`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ON_SQLITE
from tests.e2e.processes import SiteServer
from tests.e2e.scenario import create_package, deploy_to, messages, register_client, run_client

pytestmark = pytest.mark.e2e

SCRIPT = """
i=0
while [ $i -lt 4000 ]; do echo "copying file $i of 4000"; i=$((i+1)); done
echo "installer called with: $*"
echo "error: cannot write /opt/app: disk full" >&2
exit 3
"""


@ON_SQLITE
def test_a_failing_programs_last_output_is_shown_at_the_site(
    site: SiteServer, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "install.sh").write_text(SCRIPT)
    home = tmp_path / "client"
    client_id = register_client(site, home, "lab-07")
    package_id = create_package(site, source, command="sh install.sh --password=hunter2 -q")
    deployment_id = deploy_to(site, package_id, [client_id], "Lab")
    run_client(home)

    [failed] = messages(site, deployment=deployment_id, message_id="10006")
    tail = failed["output_tail"]
    assert tail.endswith(
        "copying file 3999 of 4000\ninstaller called with: --password=******** -q\n"
        "error: cannot write /opt/app: disk full\n"
    )
    assert "hunter2" not in tail
    assert len(tail.encode()) <= 64 * 1024 and "copying file 0 of" not in tail
    assert failed["output_truncated"] is False  # the client cut it to 64 KiB already

    shown = site.qm("deploy", "status", deployment_id, "--client", "lab-07").stdout
    assert "lab-07: output sent with 10006" in shown
    assert shown.rstrip().endswith("error: cannot write /opt/app: disk full")
    status = site.qm("deploy", "status", deployment_id, "--client", client_id, "--json").json()
    [row] = status["clients"]
    assert row["last_output"]["output_tail"] == tail
    assert row["last_output"]["message_id"] == 10006
    missing = site.qm("deploy", "status", deployment_id, "--client", "nobody", check=False)
    assert missing.code == 1 and "no client 'nobody'" in missing.stderr
    local = next((home / "logs" / "programs").iterdir()).read_text()
    assert "--password=******** -q" in local.splitlines()[0]  # the local header line too
