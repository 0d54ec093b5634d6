"""Byte-speed benchmarks: Quartermaster's data path against baselines measured in the same run.

    python bench/bytes.py --only files,gib                     # the commands users run
    python bench/bytes.py --only files,gib --files 10000 --size-mib 1024 --repeats 3
    python bench/bytes.py                 # everything, small sizes (256 MiB, 2,000 files)

The rows that matter are `files` and `gib`: each times a whole command a user runs, as its
own process (`qm package create`, `qm client run --once` including the lay-out,
`qm dp serve` filling from the site), against a baseline in its best configuration (nginx:
the fastest of `NGINX_VARIANTS` on the same file), taking turns with the baseline and
rotating which goes first, with min / median / max and the load average. Every round works
on new content (`renew`), so nothing is already held.

- files: a generated folder with the size mix of /usr/share/doc (`--files`, default 2,000;
  fixed seed): `qm package create` (which returns once the site's own DP holds the
  version) against `tar cf - DIR | sha256sum`, and against its physical floor, creating
  the same files anew and making them durable (`tar cf - DIR | tar xf - -C NEW && sync -f
  NEW`, no hashing); `qm client run --once` (new client, empty
  cache) against `curl -s URL | tar xf -` of a tar of the same files served by nginx from
  the same disk; a new `qm dp serve` filling from the site's library until the site lists
  the version as installed there, against the same `curl | tar x`, and that untar followed
  by `sync -f` is shown as the fill's durable floor (a DP must make its blobs durable).
- gib: one file of `--size-mib`: `qm package create` against the machine's limit (the
  slower of `openssl dgst -sha256` over the file and `dd oflag=direct` of it), and
  `qm client run --once` against `curl -s URL -o FILE && openssl dgst -sha256 FILE`.

The sections below time parts of the data path in process: they are diagnostics.

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
- chunks: one large random file (--chunk-mib, default 64; the goals speak of 1-2 GiB):
  chunks a snapshot stores new after 1 byte is inserted at the start (goal ≤ 3); the
  in-process snapshot of the new file as chunks against the same as one blob (goal ≥ 0.9×);
  then real sites, DP and client: version 2 changes 5 % of the file in 20 places, bytes the
  DP and the client moved against 1.1 × the changed bytes + 2 mean chunks a place (goal
  ≤ 1), and `qm client run --once` of version 2 (assembled from the cached chunks of
  version 1 + the changed ones) against the run of a site that keeps the file whole
  (goal ≥ 0.9×); one run each, not interleaved: a site per side.


Before every timed run that writes, the previous run's output is removed and `os.sync()`
waits for the disk, untimed, so one run's write-back never lands in another's time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import math
import os
import random
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


# The size mix of /usr/share/doc on a Debian host (percentiles of 4,808 files, 128 MB):
# half the files are under 3 KiB, one in ten above 32 KiB, one in a hundred above 400 KiB.
DOC_SIZE_PERCENTILES = (
    (0.0, 40),
    (0.1, 331),
    (0.2, 801),
    (0.3, 1390),
    (0.4, 2039),
    (0.5, 2925),
    (0.6, 4283),
    (0.7, 7050),
    (0.8, 13276),
    (0.9, 32602),
    (0.99, 436225),
    (1.0, 4 * MIB),
)
FILES_PER_FOLDER = 5  # /usr/share/doc: 4,808 files in 985 folders


def doc_like_size(rng: random.Random) -> int:
    """One file size drawn from DOC_SIZE_PERCENTILES (log-linear between two percentiles)."""
    u = rng.random()
    for (p0, s0), (p1, s1) in itertools.pairwise(DOC_SIZE_PERCENTILES):
        if u <= p1:
            t = (u - p0) / (p1 - p0)
            return int(math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0))))
    return DOC_SIZE_PERCENTILES[-1][1]


def write_doc_like_folder(folder: Path, files: int, seed: int = 16) -> int:
    """A folder of `files` files with the size mix of /usr/share/doc, the same for a seed:
    sizes, names and (random, incompressible) bytes. Returns the bytes written."""
    rng = random.Random(seed)
    noise = rng.randbytes(8 * MIB)
    total = 0
    for i in range(files):
        size = doc_like_size(rng)
        sub = folder / f"pkg{i // FILES_PER_FOLDER:05d}"
        if i % FILES_PER_FOLDER == 0:
            sub.mkdir(parents=True, exist_ok=True)
        start = rng.randrange(len(noise) - size)  # distinct files: the index leads
        (sub / f"file{i:05d}.txt").write_bytes(
            i.to_bytes(4, "big") + noise[start + 4 : start + size]
        )
        total += size
    return total


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


Stats = tuple[float, float, float]  # min, median, max seconds


def alternating(runs: dict[str, Timed], repeats: int) -> dict[str, Stats]:
    """(min, median, max) wall time of each run over `repeats` rounds, one untimed warm-up
    round first. The runs take turns and the one that goes first rotates from round to
    round, so no side always runs right after another's write-back or in its cache."""
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats + 1):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            run, prepare = runs[name]
            if prepare is not None:
                prepare()
            started = time.perf_counter()
            run()
            if round_:
                times[name].append(time.perf_counter() - started)
    return {
        name: (min(values), statistics.median(values), max(values))
        for name, values in times.items()
    }


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def shell(command: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        command, shell=True, check=True, capture_output=True, text=True, cwd=cwd
    ).stdout


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


NGINX_VARIANTS = {
    # the variants docs/performance.md compares; a baseline runs in its fastest
    "sendfile, tcp_nopush off": "sendfile on; tcp_nopush off;",
    "sendfile, tcp_nopush on": "sendfile on; tcp_nopush on;",
    "no sendfile, output_buffers 2 1m": "sendfile off; output_buffers 2 1m;",
}


@contextlib.contextmanager
def nginx_server(
    store: Path, work: Path, variant: str = "sendfile on; tcp_nopush on;"
) -> Iterator[tuple[str, int]]:
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
    {variant}
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
    def __init__(self, work: Path, size: int, repeats: int, files: int = 2000) -> None:
        self.work, self.size, self.repeats = work, size, repeats
        self.files_count = files
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
        variant = fastest_nginx(self.work, self.store, self.path.lstrip("/"), self)
        with (
            dp_content_server(self.store) as (dp_url, _),
            nginx_server(self.store, self.work, variant) as (nginx_url, _),
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
                f"nginx ({variant.strip(';')}), GB/s",
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

    # ------------------------------------------------------------------ commands users run

    def command_row(
        self, what: str, ours: Stats, baseline_name: str, baseline: Stats, goal: str
    ) -> None:
        """A row of whole commands: ratio of medians, and min / median / max of each side."""
        self.row(what, ours[1], baseline_name, baseline[1], goal)
        self.rows[-1]["ours_min_median_max"] = [round(v, 3) for v in ours]
        self.rows[-1]["baseline_min_median_max"] = [round(v, 3) for v in baseline]
        self.rows[-1]["ratio_of_minima"] = round(baseline[0] / ours[0], 2)
        self.rows[-1]["load_average"] = load_average()
        self.log(
            f"  ours {ours[0]:.2f}/{ours[1]:.2f}/{ours[2]:.2f} s, baseline "
            f"{baseline[0]:.2f}/{baseline[1]:.2f}/{baseline[2]:.2f} s, load {load_average()}"
        )

    def files(self) -> None:
        """Many small files: `qm package create`, `qm dp serve` filling from the site and
        `qm client run --once` of a folder with the size mix of /usr/share/doc, against tar."""
        base = self.work / "files"
        source = base / "src" / "doc"
        if not (base / "src" / "done").exists():
            shutil.rmtree(base / "src", ignore_errors=True)
            self.log(f"writing {self.files_count} files with the size mix of /usr/share/doc")
            total = write_doc_like_folder(source, self.files_count)
            (base / "src" / "done").write_text(str(total))
        listed = sorted(p for p in source.rglob("*") if p.is_file())
        total = int((base / "src" / "done").read_text())
        label = f"{len(listed):,} files ({total / MIB:.0f} MiB, /usr/share/doc mix)"
        www = base / "www"
        www.mkdir(parents=True, exist_ok=True)
        world = World(base / "world", source.parent)
        rounds = iter(range(1, 1000))
        packages: list[str] = []
        try:
            t = alternating(
                {
                    "create": (
                        lambda: packages.append(world.create_package(source)),
                        lambda: synced(renew, listed, next(rounds)),
                    ),
                    "tar": (lambda: shell(f"tar cf - -C {source.parent} doc | sha256sum"), os.sync),
                    "floor": durable_copy_floor(source, base / "floor"),
                },
                self.repeats,
            )
            self.command_row(
                f"`qm package create`, {label} (with the site's own DP filled)",
                t["create"],
                "tar cf - DIR | sha256sum",
                t["tar"],
                "≥ 1×",
            )
            self.command_row(
                f"`qm package create`, {label}: against the physical floor",
                t["create"],
                "create and durably write the same files: "
                "tar cf - DIR | tar xf - -C NEW && sync -f NEW",
                t["floor"],
                "(floor)",
            )
            shutil.rmtree(base / "floor", ignore_errors=True)
            shell(f"tar cf {www}/doc.tar -C {source.parent} doc")
            variant = fastest_nginx(self.work, www, "doc.tar", self)
            with nginx_server(www, self.work, variant) as (url, _pid):
                self._files_client_and_dp(world, packages, url, base, label)
        finally:
            world.stop()

    def _files_client_and_dp(
        self, world: World, packages: list[str], url: str, base: Path, label: str
    ) -> None:
        out = base / "untar"
        homes: list[Path] = []

        def fresh_untar() -> None:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            os.sync()

        def fresh_client() -> None:
            for home in homes:
                shutil.rmtree(home, ignore_errors=True)
            homes[:] = [world.client_for(packages[-1])]
            os.sync()

        untar = (lambda: shell(f"curl -s {url}/doc.tar | tar xf - -C {out}"), fresh_untar)
        # A reference for the client row: tar's files made durable. It was the row's floor
        # while a run's status messages took a syncfs, which also made the cache durable;
        # a run's few messages are now fsynced one by one and the cache is left to write-back.
        untar_sync = (
            lambda: shell(f"curl -s {url}/doc.tar | tar xf - -C {out} && sync -f {out}"),
            fresh_untar,
        )
        t = alternating(
            {
                "client": (lambda: world.run_client(homes[0]), fresh_client),
                "untar": untar,
                "untar_sync": untar_sync,
            },
            self.repeats,
        )
        self.command_row(
            f"`qm client run --once`, {label}: download, verify, lay out",
            t["client"],
            "curl -s URL-of-tar | tar xf - (nginx)",
            t["untar"],
            "≥ 1×",
        )
        floor = t["untar_sync"]
        self.rows[-1]["floor_untar_sync_min_median_max"] = [round(v, 3) for v in floor]
        self.rows[-1]["ratio_to_floor"] = round(floor[1] / t["client"][1], 2)
        self.log(
            f"  floor `curl | tar xf - && sync -f`: {floor[0]:.2f}/{floor[1]:.2f}/"
            f"{floor[2]:.2f} s, ours / floor {floor[1] / t['client'][1]:.2f}×"
        )
        fills: list[float] = []

        def fill() -> None:
            fills.append(world.dp_fill(packages[-1], packages[:-1]))

        # The physical floor of a DP fill: the same untar made durable, as a DP must be.
        durable = (
            lambda: shell(f"curl -s {url}/doc.tar | tar xf - -C {out} && sync -f {out}"),
            fresh_untar,
        )
        t = alternating({"dp": (fill, os.sync), "untar": untar, "floor": durable}, self.repeats)
        ours = (min(fills[1:]), statistics.median(fills[1:]), max(fills[1:]))
        self.log(f"  (DP fill includes starting `qm dp serve`: {t['dp'][1]:.2f} s in all)")
        self.command_row(
            f"`qm dp serve` filling from the site's library, {label}",
            ours,
            "curl -s URL-of-tar | tar xf - (nginx)",
            t["untar"],
            "≥ 1×",
        )
        floor = t["floor"]
        self.rows[-1]["durable_floor_min_median_max"] = [round(v, 3) for v in floor]
        self.rows[-1]["ratio_to_durable_floor"] = round(floor[1] / ours[1], 2)
        self.log(
            f"  floor `curl | tar xf - && sync -f`: {floor[0]:.2f}/{floor[1]:.2f}/"
            f"{floor[2]:.2f} s; DP fill / floor (of medians): {floor[1] / ours[1]:.2f}×"
        )

    def gib(self) -> None:
        """One large file through the commands users run, against the machine's limits:
        stored as chunks (the site's default above 4 MiB), then kept whole (a site whose
        chunk_threshold is above the file's size)."""
        self._gib("as chunks", None)
        self._gib("kept whole", {"chunk_threshold": 1 << 62})

    def _gib(self, form: str, config: dict[str, Any] | None) -> None:
        base = self.work / "gib"
        source = base / "src"
        big = source / "big.bin"
        if not big.exists() or big.stat().st_size != self.size:
            shutil.rmtree(source, ignore_errors=True)
            source.mkdir(parents=True)
            shutil.copyfile(self.blob, big)  # a copy: a snapshot refuses hard links
        www = source  # nginx serves the file itself (a second name would be a hard link)
        label = f"{self.size // MIB} MiB, one file {form}"
        world = World(base / "world", source, config)
        rounds = iter(range(1, 1000))
        packages: list[str] = []
        direct = base / "dd.out"
        try:
            t = alternating(
                {
                    "create": (
                        lambda: packages.append(world.create_package(source)),
                        lambda: synced(renew, [big], next(rounds)),
                    ),
                    "openssl": (lambda: shell(f"openssl dgst -sha256 {big}"), os.sync),
                    "dd": (
                        lambda: shell(
                            f"dd if={big} of={direct} bs=4M oflag=direct conv=fsync status=none"
                        ),
                        lambda: synced(direct.unlink, missing_ok=True),
                    ),
                },
                self.repeats,
            )
            limit = max(t["openssl"], t["dd"], key=lambda stats: stats[1])
            self.command_row(
                f"`qm package create`, {label} (with the site's own DP filled)",
                t["create"],
                "machine limit: max(openssl dgst, dd oflag=direct)",
                limit,
                "≥ 1/1.1 = 0.91×",
            )
            direct.unlink(missing_ok=True)
            variant = fastest_nginx(self.work, www, "big.bin", self)
            homes: list[Path] = []
            got = base / "curl.out"

            def fresh_client() -> None:
                for home in homes:
                    shutil.rmtree(home, ignore_errors=True)
                homes[:] = [world.client_for(packages[-1])]
                os.sync()

            with nginx_server(www, self.work, variant) as (url, _pid):
                t = alternating(
                    {
                        "client": (lambda: world.run_client(homes[0]), fresh_client),
                        "curl": (
                            lambda: shell(
                                f"curl -s {url}/big.bin -o {got} && openssl dgst -sha256 {got}"
                            ),
                            lambda: synced(got.unlink, missing_ok=True),
                        ),
                    },
                    self.repeats,
                )
            got.unlink(missing_ok=True)
            self.command_row(
                f"`qm client run --once`, {label}: download, verify, lay out",
                t["client"],
                "curl -s URL -o FILE && openssl dgst -sha256 FILE (nginx)",
                t["curl"],
                "≥ 1.5×",
            )
        finally:
            world.stop()

    # ------------------------------------------------------------------ chunks

    chunk_size = 64 * MIB

    def chunks(self) -> None:
        chunk_rows(self, self.chunk_size)

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


def durable_copy_floor(source: Path, work: Path) -> Timed:
    """What this disk takes to create the same files anew and make them durable, without
    hashing: `tar cf - | tar xf -` into a new folder, then `sync -f` (the floor of a
    snapshot of new content, which must do at least that). Each round writes a new folder;
    the one before is removed untimed."""
    rounds = iter(range(1, 1000))
    current: list[Path] = []

    def prepare() -> None:
        for old in current:
            shutil.rmtree(old, ignore_errors=True)
        current[:] = [work / f"r{next(rounds)}"]
        current[0].mkdir(parents=True)
        os.sync()

    def run() -> None:
        shell(
            f"tar cf - -C {source.parent} {source.name} | tar xf - -C {current[0]} "
            f"&& sync -f {current[0]}"
        )

    return run, prepare


def synced(prepare: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run an untimed preparation, then wait for the disk (os.sync)."""
    prepare(*args, **kwargs)
    os.sync()


STAMP_EVERY = 64 * 1024  # below the smallest chunk: every chunk of a large file changes


def renew(files: list[Path], round_: int) -> None:
    """Give every file new content (bytes 4-7 of every 64 KiB carry the round), so each
    round's snapshot, DP fill and client download handle content nobody holds yet, a chunked
    file's every chunk included (a stamp at its start alone would renew one chunk)."""
    stamp = round_.to_bytes(4, "big")
    for path in files:
        fd = os.open(path, os.O_WRONLY)
        try:
            for offset in range(4, max(os.fstat(fd).st_size - 4, 5), STAMP_EVERY):
                os.pwrite(fd, stamp, offset)
        finally:
            os.close(fd)


def fastest_nginx(work: Path, www: Path, name: str, bench: Bench) -> str:
    """The nginx variant that serves `www/name` fastest here (best of 3 each)."""
    best: tuple[float, str] | None = None
    for label, variant in NGINX_VARIANTS.items():
        with nginx_server(www, work, variant) as (url, _pid):
            times = []
            for _ in range(3):
                started = time.perf_counter()
                shell(f"curl -s -o /dev/null {url}/{name}")
                times.append(time.perf_counter() - started)
        bench.log(f"nginx {label}: {min(times):.3f} s for {name}")
        if best is None or min(times) < best[0]:
            best = (min(times), variant)
    assert best is not None
    return best[1]


class World:
    """A real site (`qm site serve`, with its embedded DP) and the `qm` commands a user runs,
    each as its own process."""

    def __init__(self, base: Path, sources: Path, config: dict[str, Any] | None = None) -> None:
        from tests.e2e.processes import run_qm, start_site

        shutil.rmtree(base, ignore_errors=True)  # a run that was stopped left its site
        base.mkdir(parents=True)
        self.base = base
        self.site = start_site(base, config=config)
        self.made = 0
        home = str(self.site.home)
        run_qm("site", "source-roots", "--home", home, "--add", str(sources))

    def stop(self) -> None:
        self.site.stop()

    def create_package(self, source: Path) -> str:
        self.made += 1
        return str(
            self.site.qm(
                "package",
                "create",
                "--name",
                f"Bench{self.made}",
                "--source",
                str(source),
                "--program",
                "Install=true",
                "--platform",
                "linux",
            ).stdout.strip()
        )

    def client_for(self, package_id: str) -> Path:
        """A new client (empty cache) with a deployment of the package."""
        from tests.e2e.scenario import deploy_to, register_client

        self.made += 1
        home = self.base / f"client{self.made}"
        client_id = register_client(self.site, home, f"bench-{self.made}")
        deploy_to(self.site, package_id, [client_id], f"Bench{self.made}")
        return home

    def run_client(self, home: Path) -> None:
        from tests.e2e.processes import run_qm

        run_qm("client", "run", "--home", str(home), "--once")
        # the run must have installed it: a failed run is no measurement
        state = json.loads((home / "state.json").read_text())["deployments"]
        if not any(d.get("ran_result") == "succeeded" for d in state.values()):
            raise RuntimeError(f"the client in {home} did not install its deployment: {state}")

    def dp_fill(self, package_id: str, others: list[str]) -> float:
        """Seconds from starting `qm dp serve` (a new DP, empty store) to the site listing
        the package as installed on it."""
        from tests.e2e.processes import Daemon, DPServer, free_port

        self.made += 1
        name, port = f"fill{self.made}", free_port()
        token = self.site.qm("dp", "add", "--name", name, "--url", f"http://127.0.0.1:{port}")
        for other in others:
            self.site.qm("package", "remove-dp", other, "--dp", name)
        home = self.base / f"dp-{name}"
        serve = [
            "dp", "serve", "--home", str(home), "--site", self.site.url,
            "--token", token.stdout.strip(), "--listen", f"127.0.0.1:{port}",
            "--poll-interval", "1",
        ]  # fmt: skip
        dp = DPServer(name, home, port, Daemon(serve, self.base / f"dp-{name}.log"))
        started = time.perf_counter()
        dp.daemon.start()
        try:
            while not self._installed(package_id, name):
                dp.daemon.check_alive()
                time.sleep(0.05)
            took = time.perf_counter() - started
        finally:
            dp.stop()
        self.site.qm("dp", "retire", name)
        shutil.rmtree(home, ignore_errors=True)
        return took

    def _installed(self, package_id: str, dp: str) -> bool:
        shown = self.site.api("GET", f"/api/v1/packages/{package_id}")
        return any(d["dp"] == dp and d["state"] == "installed" for d in shown["distribution"])


# ------------------------------------------------------------------ chunks
# Chunk-level deltas inside large files (site/content_chunks.py). Sizes: --chunk-mib.

CHANGED_PLACES = 20  # places a new version changes, 5 % of the file in all


def chunk_rows(bench: Bench, size: int) -> None:
    """All rows of the chunks section, on a file of `size` bytes."""
    base = bench.work / "chunks"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    chunk_insert_row(bench, base, size)
    chunk_snapshot_row(bench, base, size)
    chunk_delta_rows(bench, base, size)
    shutil.rmtree(base, ignore_errors=True)


def chunk_insert_row(bench: Bench, base: Path, size: int) -> None:
    """1 byte inserted at the start: the chunks a second snapshot stores new (what moves)."""
    from quartermaster.site.content_library import ContentLibrary

    source = base / "insert"
    write_random(source / "big.bin", size)
    library = ContentLibrary(base / "insert-library")
    [first] = library.snapshot(source).files
    data = (source / "big.bin").read_bytes()
    (source / "big.bin").write_bytes(b"\x01" + data)
    del data
    [second] = library.snapshot(source).files
    new = {c.sha256 for c in second.chunks} - {c.sha256 for c in first.chunks}
    shutil.rmtree(source)
    shutil.rmtree(base / "insert-library")
    bench.row(
        f"1 byte inserted at the start of a {size // MIB} MiB file: chunks moved",
        len(new),
        "3 chunks",
        3,
        "≤ 1",
        unit="chunks",
        ratio=len(new) / 3,
    )


def chunk_snapshot_row(bench: Bench, base: Path, size: int) -> None:
    """In-process diagnostic: `ContentLibrary.snapshot` of new content, chunked or whole."""
    from quartermaster.site.content_library import ContentLibrary

    source = base / "snapshot"
    write_random(source / "big.bin", size)
    libraries = {"whole": base / "lib-whole", "chunked": base / "lib-chunked"}

    def fresh() -> None:
        for folder in libraries.values():
            shutil.rmtree(folder, ignore_errors=True)
        os.sync()

    t = interleaved_medians(
        {
            "chunked": (lambda: ContentLibrary(libraries["chunked"]).snapshot(source), fresh),
            "whole": (
                lambda: ContentLibrary(libraries["whole"], chunk_threshold=1 << 62).snapshot(
                    source
                ),
                fresh,
            ),
        },
        bench.repeats,
    )
    fresh()
    shutil.rmtree(source)
    bench.row(
        f"snapshot of a new {size // MIB} MiB file as chunks (in-process)",
        t["chunked"],
        "the same as one blob",
        t["whole"],
        "≥ 0.9×",
    )


def chunk_delta_rows(bench: Bench, base: Path, size: int) -> None:
    """A real site, its DP and a client: version 2 of a chunked file changes 5 % of it in 20
    places; bytes moved to the DP and the client, and `qm client run --once` times."""
    source = base / "delta-src"
    write_random(source / "big.bin", size)
    (source / "install.sh").write_text("exit 0\n")
    t_single, site, *_ = _client_run_time(base / "whole-site", source, {"chunk_threshold": 1 << 62})
    site.stop()
    shutil.rmtree(base / "whole-site", ignore_errors=True)
    t_first, t_second, moved, allowance = _chunked_versions(base / "chunk-site", source, size)
    changed = size // 20
    bench.row(
        f"new version, 5 % of a {size // MIB} MiB file changed in 20 places: bytes to the DP",
        moved["dp"],
        "1.1 × changed bytes + 2 chunks a place",
        allowance,
        "≤ 1",
        unit="bytes",
        ratio=moved["dp"] / allowance,
    )
    bench.row(
        f"new version, 5 % of a {size // MIB} MiB file changed in 20 places: bytes to a client",
        moved["client"],
        "1.1 × changed bytes + 2 chunks a place",
        allowance,
        "≤ 1",
        unit="bytes",
        ratio=moved["client"] / allowance,
    )
    bench.log(f"changed bytes: {changed}")
    bench.row(
        "`qm client run --once`, version 2 assembled from cache + changed chunks",
        t_second,
        "the same file as one blob, empty cache",
        t_single,
        "≥ 0.9×",
    )
    bench.row(
        "`qm client run --once`, version 1 as chunks, empty cache (diagnostic)",
        t_first,
        "the same file as one blob, empty cache",
        t_single,
        "(none)",
    )


def _client_run_time(
    base: Path, source: Path, config: dict[str, Any]
) -> tuple[float, Any, str, str, Path]:
    """Start a site, publish `source`, deploy it to a new client and time its first run.
    Returns (seconds, the running site, package ID, client ID, client home)."""
    from tests.e2e.processes import run_qm, start_site, wait_until

    site = start_site(base, config=config)
    try:
        run_qm("site", "source-roots", "--home", str(site.home), "--add", str(source))
        package_id = site.qm(
            "package",
            "create",
            "--name",
            "Chunks",
            "--source",
            str(source),
            "--program",
            "Install=sh install.sh",
        ).stdout.strip()
        Bench._wait_installed(site, package_id, 1, wait_until)
        home = base / "client"
        client_id = run_qm(
            "client", "register", "--home", str(home), "--site", site.url, "--hostname", "bench"
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
        os.sync()
        started = time.perf_counter()
        run_qm("client", "run", "--home", str(home), "--once")
        elapsed = time.perf_counter() - started
    except BaseException:
        site.stop()
        raise
    return elapsed, site, package_id, client_id, home


def _chunked_versions(
    base: Path, source: Path, size: int
) -> tuple[float, float, dict[str, int], float]:
    """(first run s, second run s, bytes moved for version 2, the goal's allowance)."""
    from tests.e2e.processes import run_qm, wait_until

    t_first, site, package_id, _client_id, home = _client_run_time(base, source, {})
    try:
        _change_places(source / "big.bin", size)
        site.qm("package", "update", package_id)
        Bench._wait_installed(site, package_id, 2, wait_until)
        os.sync()
        started = time.perf_counter()
        run_qm("client", "run", "--home", str(home), "--once")
        t_second = time.perf_counter() - started
        moved = {
            "dp": Bench._message_number(site, package_id, 2330, 2, 3),
            "client": Bench._message_number(site, package_id, 10036, 2, 5),
        }
        chunks = _chunk_count(site, package_id, 2)
    finally:
        site.stop()
        shutil.rmtree(base, ignore_errors=True)
    mean_chunk = size / chunks
    allowance = 1.1 * (size // 20) + 2 * CHANGED_PLACES * mean_chunk
    return t_first, t_second, moved, allowance


def _change_places(path: Path, size: int) -> None:
    """Overwrite 5 % of the file with new random bytes, in CHANGED_PLACES places spread out."""
    each = size // 20 // CHANGED_PLACES
    with open(path, "r+b") as handle:
        for place in range(CHANGED_PLACES):
            handle.seek(place * (size // CHANGED_PLACES) + size // (3 * CHANGED_PLACES))
            handle.write(os.urandom(each))


def _chunk_count(site: Any, package_id: str, version: int) -> int:
    shown = site.api("GET", f"/api/v1/packages/{package_id}")["versions"]
    package_hash = shown[version - 1]["package_hash"]
    envelope = json.loads(
        (site.home / "library" / "manifests" / f"{package_hash}.json").read_text()
    )
    return sum(len(f.get("chunks", ())) for f in envelope["signed"]["files"])


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
    """Rows of whole commands show min / median / max of each side and the load average;
    the ratio is of the medians (of the minima in brackets)."""
    lines = [
        "| what | ours | baseline | baseline value | ratio | goal | load 1/5/15 min |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        baseline = r["baseline"].replace("|", "\\|")
        ours, theirs = f"{r['ours']} {r['unit']}", f"{r['baseline_value']} {r['unit']}"
        ratio = f"{r['ratio']}{' ' + r['ratio_meaning'] if 'ratio_meaning' in r else '×'}"
        if "ours_min_median_max" in r:
            ours = " / ".join(map(str, r["ours_min_median_max"])) + " s"
            theirs = " / ".join(map(str, r["baseline_min_median_max"])) + " s"
            ratio += f" ({r['ratio_of_minima']}×)"
        lines.append(
            f"| {r['what']} | {ours} | {baseline} | {theirs} | {ratio} | {r['goal']} | "
            f"{r.get('load_average', '')} |"
        )
    return "\n".join(lines)


SECTIONS = ("files", "gib", "client", "serve", "memory", "snapshot", "bucket", "delta", "chunks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--files", type=int, default=2000, help="files of the `files` rows")
    parser.add_argument("--repeats", type=int, default=3)
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
    parser.add_argument(
        "--chunk-mib", type=int, default=64, help="size of the chunked file (chunks section)"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.e2e for `delta`
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    with contextlib.ExitStack() as stack:
        work = args.work or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="qm-bytes-", dir="/var/tmp"))
        )
        work.mkdir(parents=True, exist_ok=True)
        bench = Bench(work, args.size_mib * MIB, args.repeats, args.files)
        bench.chunk_size = args.chunk_mib * MIB
        for section in chosen:
            getattr(bench, section)()
        print(format_table(bench.rows))
        if args.json:
            args.json.write_text(json.dumps(bench.rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
