"""Achieved download rate against the bandwidth cap, over a long download.

    python bench/bandwidth.py [--seconds 60] [--caps 1000000,2000000,4000000]

For each cap (bytes per second) a blob of cap × seconds random bytes is served by a local
HTTP server on 127.0.0.1 and fetched by the client's content access (core.blob_transfer
through client.content_access, the same pacing the agent applies from its policy's
bandwidth limit). The row gives the achieved rate (bytes / wall time of the whole transfer)
and its ratio to the cap; the goal is within ±10 %. An unlimited row shows what the machine
does without a cap (the baseline the caps are far below). docs/performance.md has figures.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from quartermaster.client.cache import ContentCache
from quartermaster.client.content_access import ContentAccess
from quartermaster.client.site_link import Location
from quartermaster.core.bandwidth import BandwidthLimit
from quartermaster.core.blob_transfer import BlobFetcher
from quartermaster.core.component_log import ComponentLog
from quartermaster.core.store_layout import blob_path


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass


def one_row(folder: Path, cap: int | None, size: int) -> dict[str, float | int | None]:
    store, cache = folder / "store", folder / "cache"
    data = os.urandom(size)
    sha = hashlib.sha256(data).hexdigest()
    target = blob_path(store, sha)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    handler = functools.partial(QuietHandler, directory=str(store))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        access = ContentAccess(
            ContentCache(cache, 2**40), BlobFetcher(), ComponentLog(folder / "logs", "cas")
        )
        access.limit = BandwidthLimit(rate=cap)
        location = Location("bench", f"http://127.0.0.1:{server.server_address[1]}")
        started = time.perf_counter()
        access._fetch_from(location, sha, size, "big.bin")
        elapsed = time.perf_counter() - started
    finally:
        server.shutdown()
    achieved = size / elapsed
    return {
        "cap_bytes_per_s": cap,
        "bytes": size,
        "seconds": round(elapsed, 2),
        "achieved_bytes_per_s": round(achieved),
        "ratio_to_cap": round(achieved / cap, 3) if cap else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--caps", default="1000000,2000000,4000000")
    args = parser.parse_args()
    caps = [int(c) for c in args.caps.split(",") if c]
    rows = []
    with tempfile.TemporaryDirectory(prefix="qm-bandwidth-") as folder:
        rows.append(one_row(Path(folder) / "unlimited", None, 256 * 1024 * 1024))
        for cap in caps:
            rows.append(one_row(Path(folder) / str(cap), cap, int(cap * args.seconds)))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
