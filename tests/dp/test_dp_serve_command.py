"""`qm dp serve` as a real process: clear errors, and a stored credential needs no token."""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import sys
from pathlib import Path

from quartermaster.core.store_layout import blob_relpath
from tests.dp.dp_fixtures import closed_port, enrolled_home, put_raw_blob, request, wait_for_log

QM = str(Path(sys.executable).with_name("qm"))


def run_qm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([QM, *args], capture_output=True, text=True, timeout=120)


def test_taken_port_is_reported_before_the_token_is_spent(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_qm(
            "dp",
            "serve",
            "--home",
            str(tmp_path / "dp"),
            "--site",
            f"http://127.0.0.1:{closed_port()}",
            "--token",
            "qme_once",
            "--listen",
            f"127.0.0.1:{port}",
        )
    assert result.returncode == 2
    assert "already in use" in result.stderr
    assert "hint: " in result.stderr and "--listen" in result.stderr
    assert not (tmp_path / "dp" / "dp.json").exists()


def test_first_start_without_token_explains_enrollment(tmp_path: Path) -> None:
    result = run_qm("dp", "serve", "--home", str(tmp_path / "dp"), "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert "not enrolled" in result.stderr and "--token" in result.stderr


def test_unreachable_site_at_enrollment_is_an_error(tmp_path: Path) -> None:
    result = run_qm(
        "dp",
        "serve",
        "--home",
        str(tmp_path / "dp"),
        "--site",
        f"http://127.0.0.1:{closed_port()}",
        "--token",
        "qme_once",
        "--listen",
        "127.0.0.1:0",
    )
    assert result.returncode == 2
    assert "cannot reach the site" in result.stderr and "check --site" in result.stderr


def test_bad_listen_address_is_an_error(tmp_path: Path) -> None:
    result = run_qm("dp", "serve", "--home", str(tmp_path / "dp"), "--listen", "9000")
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr


def test_enrolled_dp_serves_without_token_and_stops_on_sigterm(tmp_path: Path) -> None:
    home = enrolled_home(tmp_path / "dp", f"http://127.0.0.1:{closed_port()}")
    sha = put_raw_blob(home.store_root, b"held blob")
    port = closed_port()
    process = subprocess.Popen(
        [QM, "dp", "serve", "--home", str(home.root), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None  # the log: stderr
        first = process.stderr.readline()
        assert "INFO" in first and "DP dp2 serving" in first, first
        status, _, body = request(port, "/" + blob_relpath(sha))
        assert status == 200 and hashlib.sha256(body).hexdigest() == sha
        wait_for_log(home, "site unreachable")
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert (
        (home.root / "distmgr.log")
        .read_text()
        .splitlines()[-1]
        .startswith("<![LOG[DP dp2 stopped]LOG]!>")
    )
