"""Byte-speed benchmarks: Quartermaster's data path against baselines measured in the same run.

    python bench/bytes.py                 # everything, 1 GiB, 5 repeats (about 5 minutes)
    python bench/bytes.py --only client,serve --size-mib 256 --repeats 1

Each row is a ratio against a baseline measured on the same data, on 127.0.0.1, in this
run, so the figures say how close the code is to what the machine can do (docs/
performance.md). Times are the median of --repeats runs after one warm-up, and the two
sides of a ratio take turns (ours, baseline, ours, ...) so that both see the same load on
a shared machine; the page cache is warm for both sides of every comparison. Needs `curl`,
`openssl` and, for the serving rows, `nginx` (`apt-get install -y nginx`); a row whose tool
is missing is skipped.

- client: `BlobFetcher.fetch` (download, hash, write, rename) of one blob from the DP's
  content server into a client cache, as `ContentAccess` does it (journal first, no fsync
  on the way, the batch fsync deferred), against `curl -s URL | openssl dgst -sha256` from
  the same server (goal ≥ 1.5×) and against `hashlib.sha256` over the same bytes in memory
  (goal ≥ 0.85×); also with an fsync per blob (what a DP store does), to show what
  durability costs, and after some idle seconds (on a VM, memory its host took back).
- serve: the DP content server (aiohttp, sendfile) against nginx over the same store, to
  1 and to 32 concurrent `curl -o /dev/null` (goal ≥ 1×, aggregate bytes per second).
- memory: the DP content server's RSS with 1,000 concurrent downloads open (goal: flat,
  < 300 MB).
- snapshot: `ContentLibrary.snapshot` of a folder of 1,000 files into an empty library
  against `openssl dgst -sha256` over the same files (goal ≥ 1×), with and without the
  fsyncs; against `cp -r` of the folder then `sync -f` (what this disk takes to hold the
  bytes, no hashing); and again into a library that holds all of it (a `package update` of
  an unchanged folder).
- bucket: the client's download+verify of one blob from a DP store in an S3 bucket (a real
  SeaweedFS, `weed` from the test extras), by plain HTTP GET from the bucket's endpoint,
  against `curl -s URL | openssl dgst -sha256` from the same bucket (goal ≥ 1×).
- delta: a real site, DP and client; version 2 changes 1 of 1,000 files: bytes the DP and
  the client moved (status 2330 and 10036) against the changed file's size (goal ≤ 1.05).

Before every timed run that writes, the previous run's output is removed and `os.sync()`
waits for the disk, untimed, so one run's write-back never lands in another's time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MIB = 1 << 20
# A guest with free page reporting (virtio-balloon) hands memory freed for a few seconds back
# to its host, which must fault it in again on first touch: 0.7-1.6 s per GiB on the VM of
# docs/performance.md. A client run right after the last one's file was removed reuses
# memory still backed; one after this idle time shows what fresh memory costs there.
IDLE_S = 6.0
PY = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


Timed = tuple[Callable[[], Any], Callable[[], Any] | None]  # (run, untimed prepare)


def interleaved_medians(runs: dict[str, Timed], repeats: int) -> dict[str, float]:
    """Median wall time of each run, taking turns: ours, baseline, ours, baseline, ...

    On a shared machine the load changes within seconds; taking turns puts both sides of a
    ratio under the same load instead of one side in a quiet minute and the other in a busy
    one. One untimed warm-up of each first.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(repeats + 1):
        for name, (run, prepare) in runs.items():
            if prepare is not None:
                prepare()
            started = time.perf_counter()
            run()
            if round_:
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def write_random(path: Path, size: int) -> str:
    """A file of random bytes; its SHA-256."""
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 * MIB))
            digest.update(chunk)
            handle.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_http(url: str, timeout: float = 30.0) -> None:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=2)
            conn.request("GET", parts.path or "/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


@contextlib.contextmanager
def dp_content_server(store: Path) -> Iterator[tuple[str, int]]:
    """The DP's own content server (the code `qm dp serve` runs) over `store`."""
    port = free_port()
    code = (
        "import sys; from pathlib import Path; from quartermaster.dp.content_server import "
        "StoreMount, create_content_app, run_content_server; run_content_server("
        "create_content_app([StoreMount('', Path(sys.argv[1]))]), '127.0.0.1', "
        "int(sys.argv[2]))"
    )
    proc = subprocess.Popen([PY, "-c", code, str(store), str(port)])
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def nginx_server(store: Path, work: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    prefix = work / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes auto;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {store};
        location = /healthz {{ return 200 "ok"; }}
    }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(prefix)])
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def store_blob(store: Path, source: Path, sha256: str) -> str:
    """Put `source` into a store under its hash; the blob's URL path."""
    from quartermaster.core.store_layout import blob_path

    target = blob_path(store, sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.link(source, target)
    return "/" + target.relative_to(store).as_posix()


@contextlib.contextmanager
def without_fsync() -> Iterator[None]:
    """Turn the data path's fsyncs into no-ops in this process (to show what they cost)."""
    from quartermaster.site import content_library

    saved = (os.fsync, content_library.fsync_path)
    os.fsync = lambda fd: None  # type: ignore[assignment]
    content_library.fsync_path = lambda path: None  # type: ignore[assignment]
    try:
        yield
    finally:
        os.fsync, content_library.fsync_path = saved


class Bench:
    def __init__(self, work: Path, size: int, repeats: int) -> None:
        self.work, self.size, self.repeats = work, size, repeats
        self.rows: list[dict[str, Any]] = []
        self.store = work / "store"
        self.blob = work / "blob.bin"
        if not self.blob.exists() or self.blob.stat().st_size != size:
            self.log(f"writing {size // MIB} MiB of random bytes")
            self.sha256 = write_random(self.blob, size)
            (work / "blob.sha256").write_text(self.sha256)
        else:
            self.sha256 = (work / "blob.sha256").read_text().strip()
        self.path = store_blob(self.store, self.blob, self.sha256)

    @staticmethod
    def log(text: str) -> None:
        print(f"[bytes {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def row(
        self,
        what: str,
        ours: float,
        baseline_name: str,
        baseline: float,
        goal: str,
        unit: str = "s",
        ratio: float | None = None,
    ) -> None:
        ratio = baseline / ours if ratio is None else ratio
        self.rows.append(
            {
                "what": what,
                "ours": round(ours, 3),
                "baseline": baseline_name,
                "baseline_value": round(baseline, 3),
                "unit": unit,
                "ratio": round(ratio, 2),
                "goal": goal,
            }
        )
        self.log(
            f"{what}: {ours:.3f} {unit} vs {baseline_name} {baseline:.3f} {unit} "
            f"-> {ratio:.2f} (goal {goal})"
        )

    # ------------------------------------------------------------------ client

    def client(self) -> None:
        from quartermaster.client.cache import ContentCache
        from quartermaster.core.blob_transfer import BlobFetcher

        data = self.blob.read_bytes()  # hashlib's side: the same bytes, in memory
        cache = ContentCache(self.work / "client", 1 << 40)
        dest = cache.blob_path(self.sha256)
        with dp_content_server(self.store) as (url, _pid):
            blob_url = url + self.path

            def clean() -> None:
                cache.remove(self.sha256)
                os.sync()

            def clean_then_idle() -> None:
                clean()
                time.sleep(IDLE_S)

            def fetch(durable: bool) -> None:
                fetcher = BlobFetcher()
                try:
                    fetcher.fetch(blob_url, dest, self.sha256, self.size, durable=durable)
                finally:
                    fetcher.close()

            def curl_openssl() -> None:
                out = subprocess.run(
                    f"curl -s {blob_url} | openssl dgst -sha256",
                    shell=True,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                assert self.sha256 in out

            t = interleaved_medians(
                {
                    "client": (lambda: fetch(False), clean),
                    "durable": (lambda: fetch(True), clean),
                    "curl": (curl_openssl, os.sync),
                    "hashlib": (lambda: hashlib.sha256(data).hexdigest(), None),
                },
                self.repeats,
            )
            # Last, on its own: memory the host took back stays slow for the runs after it.
            t |= interleaved_medians(
                {"idle": (lambda: fetch(False), clean_then_idle)}, self.repeats
            )
        t_client, t_durable = t["client"], t["durable"]
        t_curl, t_hashlib = t["curl"], t["hashlib"]
        shutil.rmtree(dest.parent, ignore_errors=True)
        self.row(
            "client download+verify (no fsync, as the client cache does)",
            t_client,
            "curl | openssl dgst",
            t_curl,
            "≥ 1.5×",
        )
        self.row(
            "client download+verify (no fsync, as the client cache does)",
            t_client,
            "hashlib in memory",
            t_hashlib,
            "≥ 0.85×",
        )
        self.row(
            "download+verify with fsync per blob (as a DP store does)",
            t_durable,
            "curl | openssl dgst",
            t_curl,
            "(reference)",
        )
        self.row(
            f"client download+verify, {IDLE_S:g} s idle first (a VM's freed memory "
            "returned to its host)",
            t["idle"],
            "curl | openssl dgst",
            t_curl,
            "(reference)",
        )

    # ------------------------------------------------------------------ bucket

    def bucket(self) -> None:
        from tests.dp.seaweedfs import WRITER_ENV, running_seaweedfs

        from quartermaster.client.cache import ContentCache
        from quartermaster.core.blob_transfer import BlobFetcher
        from quartermaster.dp.s3_store import S3Location, S3Store

        cache = ContentCache(self.work / "client", 1 << 40)
        dest = cache.blob_path(self.sha256)
        shutil.rmtree(self.work / "seaweedfs", ignore_errors=True)
        with running_seaweedfs(self.work / "seaweedfs") as s3, _environment(WRITER_ENV):
            store = S3Store(S3Location.parse(s3.store_url("bench")), self.work / "staging")
            self.log(f"uploading {self.size // MIB} MiB to the bucket")
            store.upload(self.blob, self.sha256)
            blob_url = f"{s3.public_url('bench')}{self.path}"

            def clean() -> None:
                cache.remove(self.sha256)
                os.sync()

            def fetch() -> None:
                fetcher = BlobFetcher()
                try:
                    fetcher.fetch(blob_url, dest, self.sha256, self.size, durable=False)
                finally:
                    fetcher.close()

            def curl_openssl() -> None:
                out = subprocess.run(
                    f"curl -s {blob_url} | openssl dgst -sha256",
                    shell=True,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                assert self.sha256 in out

            t = interleaved_medians(
                {"client": (fetch, clean), "curl": (curl_openssl, os.sync)}, self.repeats
            )
        shutil.rmtree(self.work / "seaweedfs", ignore_errors=True)
        self.row(
            "client download+verify from an S3 bucket (SeaweedFS), plain GET",
            t["client"],
            "curl | openssl dgst, same bucket",
            t["curl"],
            "≥ 1×",
        )

    # ------------------------------------------------------------------ serving

    def _curl_many(self, url: str, n: int) -> float:
        """Wall time for n concurrent curl downloads of the blob to /dev/null."""
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", url],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(n)
        ]
        for proc in procs:
            out, _ = proc.communicate()
            assert int(out) == self.size, f"short download: {out}"
        return time.perf_counter() - started

    def _downloads(self, base_url: str, n: int) -> Callable[[], float]:
        return lambda: self._curl_many(base_url + self.path, n)

    def serve(self) -> None:
        if shutil.which("nginx") is None:
            self.log("nginx is not installed: serving rows skipped (apt-get install -y nginx)")
            return
        results: dict[tuple[str, int], float] = {}
        with (
            dp_content_server(self.store) as (dp_url, _),
            nginx_server(self.store, self.work) as (nginx_url, _),
        ):
            for n in (1, 32):  # both servers up, taking turns under the same load
                repeats = self.repeats if n == 1 else max(1, self.repeats // 2)
                t = interleaved_medians(
                    {
                        "dp": (self._downloads(dp_url, n), None),
                        "nginx": (self._downloads(nginx_url, n), None),
                    },
                    repeats,
                )
                results[("dp", n)], results[("nginx", n)] = t["dp"], t["nginx"]
        for n in (1, 32):
            ours, theirs = results[("dp", n)], results[("nginx", n)]
            self.row(
                f"DP serving to {n} client(s), GB/s",
                n * self.size / ours / 1e9,
                "nginx, GB/s",
                n * self.size / theirs / 1e9,
                "≥ 1×",
                unit="GB/s",
                ratio=theirs / ours,
            )

    # ------------------------------------------------------------------ memory

    def memory(self, connections: int = 1000) -> None:
        with dp_content_server(self.store) as (url, pid):
            port = int(url.rsplit(":", 1)[1])
            idle = rss_mib(pid)
            peak = asyncio.run(self._hold_downloads(port, pid, connections))
        self.row(
            f"DP RSS with {connections} downloads open, MiB",
            peak,
            "idle RSS, MiB",
            idle,
            "< 300 MB, flat",
            unit="MiB",
            ratio=(peak - idle) * 1024 / connections,
        )
        self.rows[-1]["ratio_meaning"] = "KiB per connection"

    async def _hold_downloads(self, port: int, pid: int, connections: int) -> float:
        request = f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        streams = []
        for _ in range(connections):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=64 * 1024)
            writer.write(request)
            streams.append((reader, writer))
        await asyncio.gather(*(r.readexactly(256 * 1024) for r, _ in streams))
        peak = 0.0
        for _ in range(20):  # the downloads stay open, the readers stall: sample the server
            peak = max(peak, rss_mib(pid))
            await asyncio.gather(*(r.read(64 * 1024) for r, _ in streams))
            await asyncio.sleep(0.1)
        for _, writer in streams:
            writer.close()
        return peak

    # ------------------------------------------------------------------ snapshot

    def _source_folder(self, files: int = 1000) -> Path:
        source = self.work / "source"
        if not (source / "done").exists():
            shutil.rmtree(source, ignore_errors=True)
            self.log(f"writing a source folder of {files} files")
            each = self.size // files
            with open(self.blob, "rb") as blob:
                for i in range(files):
                    (source / f"dir{i % 10}").mkdir(parents=True, exist_ok=True)
                    (source / f"dir{i % 10}" / f"file{i:04d}.bin").write_bytes(blob.read(each))
            (source / "done").write_text("")
        return source

    def snapshot(self) -> None:
        from quartermaster.site.content_library import ContentLibrary

        source = self._source_folder()
        files = sorted(str(p) for p in source.rglob("*.bin"))
        libraries = self.work / "libraries"
        shutil.rmtree(libraries, ignore_errors=True)
        library = libraries / "0"

        def clean() -> None:
            # A new, empty library each time, the old ones kept until the end: removing
            # 1,000 files just before creating 1,000 makes ext4 scan for inodes to reuse
            # (`recently_deleted`), a cost of the benchmark, not of a snapshot.
            nonlocal library
            library = libraries / str(int(library.name) + 1)
            os.sync()

        def snap() -> None:
            ContentLibrary(library).snapshot(source)

        def openssl() -> None:
            subprocess.run(
                ["openssl", "dgst", "-sha256", *files], check=True, stdout=subprocess.DEVNULL
            )

        def copy() -> None:  # what it costs this disk to hold the bytes: no hashing at all
            subprocess.run(["cp", "-r", str(source), str(library)], check=True)
            subprocess.run(["sync", "-f", str(library)], check=True)

        def snap_nofsync() -> None:
            with without_fsync():
                snap()

        def snap_unchanged() -> None:
            ContentLibrary(libraries / "0").snapshot(source)

        ContentLibrary(libraries / "0").snapshot(source)  # the library of `package update`
        t = interleaved_medians(
            {
                "snap": (snap, clean),
                "nofsync": (snap_nofsync, clean),
                "unchanged": (snap_unchanged, os.sync),
                "openssl": (openssl, os.sync),
                "copy": (copy, clean),
            },
            self.repeats,
        )
        t_snap, t_snap_nofsync = t["snap"], t["nofsync"]
        t_unchanged, t_openssl = t["unchanged"], t["openssl"]
        shutil.rmtree(libraries, ignore_errors=True)
        self.row(
            "snapshot of 1,000 files (with fsync)",
            t_snap,
            "openssl dgst -sha256",
            t_openssl,
            "≥ 1×",
        )
        self.row(
            "snapshot of 1,000 files (with fsync)",
            t_snap,
            "cp -r + sync -f",
            t["copy"],
            "(reference)",
        )
        self.row(
            "snapshot of 1,000 files (no fsync)",
            t_snap_nofsync,
            "openssl dgst -sha256",
            t_openssl,
            "≥ 1×",
        )
        self.row(
            "snapshot of 1,000 unchanged files (`package update`)",
            t_unchanged,
            "openssl dgst -sha256",
            t_openssl,
            "≥ 1×",
        )

    # ------------------------------------------------------------------ delta

    def delta(self, files: int = 1000, each: int = 64 * 1024) -> None:
        from tests.e2e.processes import run_qm, start_site, wait_until

        base = self.work / "delta"
        shutil.rmtree(base, ignore_errors=True)
        source = base / "src"
        for i in range(files - 1):
            write_random(source / f"dir{i % 10}" / f"file{i:04d}.bin", each)
        (source / "install.sh").write_text("exit 0\n")
        site = start_site(base)
        try:
            package_id = site.qm(
                "package",
                "create",
                "--name",
                "Delta",
                "--source",
                str(source),
                "--program",
                "Install=sh install.sh",
            ).stdout.strip()
            self._wait_installed(site, package_id, 1, wait_until)
            client_home = base / "client"
            client_id = run_qm(
                "client",
                "register",
                "--home",
                str(client_home),
                "--site",
                site.url,
                "--hostname",
                "bench",
            ).stdout.strip()
            site.api("POST", "/api/v1/collections", json={"name": "Bench"})
            site.api("POST", "/api/v1/collections/Bench/members", json={"client_id": client_id})
            site.api(
                "POST",
                "/api/v1/deployments",
                json={
                    "package_id": package_id,
                    "program": "Install",
                    "collection": "Bench",
                    "rerun": "always",
                },
            )
            run_qm("client", "run", "--home", str(client_home), "--once")
            changed = source / "dir3" / "file0003.bin"
            write_random(changed, each)
            site.qm("package", "update", package_id)
            self._wait_installed(site, package_id, 2, wait_until)
            run_qm("client", "run", "--home", str(client_home), "--once")
            to_dp = self._message_number(site, package_id, 2330, 2, 3)
            to_client = self._message_number(site, package_id, 10036, 2, 5)
        finally:
            site.stop()
        self.row(
            "new version, 1 of 1,000 files changed: bytes to the DP",
            to_dp,
            "changed bytes",
            each,
            "≤ 1.05",
            unit="bytes",
            ratio=to_dp / each,
        )
        self.row(
            "new version, 1 of 1,000 files changed: bytes to a client",
            to_client,
            "changed bytes",
            each,
            "≤ 1.05",
            unit="bytes",
            ratio=to_client / each,
        )

    @staticmethod
    def _wait_installed(site: Any, package_id: str, version: int, wait_until: Any) -> None:
        def installed() -> bool:
            shown = site.api("GET", f"/api/v1/packages/{package_id}")
            return any(
                d["dp"] == "site" and d["source_version"] == version and d["state"] == "installed"
                for d in shown["distribution"]
            )

        wait_until(installed, f"{package_id} version {version} on the site's DP", timeout=300)

    @staticmethod
    def _message_number(
        site: Any, package_id: str, message_id: int, version: int, index: int
    ) -> int:
        """An insertion string (a byte count) of the message about this version."""
        messages = site.api(
            "GET",
            "/api/v1/status-messages",
            params={"package": package_id, "message_id": message_id, "limit": 100},
        )["messages"]
        for message in messages:
            strings = message["insertion_strings"]
            if str(version) in strings[1:5]:
                return int(strings[index])
        raise RuntimeError(f"no status message {message_id} about version {version}: {messages}")


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (boto3 reads its credentials there)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| what | ours | baseline | baseline value | ratio | goal |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        baseline = r["baseline"].replace("|", "\\|")
        lines.append(
            f"| {r['what']} | {r['ours']} {r['unit']} | {baseline} | "
            f"{r['baseline_value']} {r['unit']} | {r['ratio']}"
            f"{' ' + r['ratio_meaning'] if 'ratio_meaning' in r else '×'} | {r['goal']} |"
        )
    return "\n".join(lines)


SECTIONS = ("client", "serve", "memory", "snapshot", "bucket", "delta")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--work",
        type=Path,
        help="scratch folder (default: a temporary one, "
        "on disk, not tmpfs, so fsync means what it means for clients)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.e2e for `delta`
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    with contextlib.ExitStack() as stack:
        work = args.work or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="qm-bytes-", dir="/var/tmp"))
        )
        work.mkdir(parents=True, exist_ok=True)
        bench = Bench(work, args.size_mib * MIB, args.repeats)
        for section in chosen:
            getattr(bench, section)()
        print(format_table(bench.rows))
        if args.json:
            args.json.write_text(json.dumps(bench.rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
