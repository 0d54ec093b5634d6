"""Chunks of large files: the sizes the site cuts at, and the rules every chunk list obeys.

A file above the threshold is stored as content-defined chunks (site/content_chunks.py cuts
them), each a blob of its own named by its SHA-256; the file keeps its own SHA-256, checked
after assembly. Clients and DPs only read chunk lists, so this module needs no chunker.
"""

from __future__ import annotations

from collections.abc import Sequence

CHUNK_THRESHOLD = 4 * 1024 * 1024  # files larger than this are chunked
# Each chunk is a file on every DP and client and a request where packs are not served:
# at a 64 KiB average the snapshot of new chunked content ran at 0.13-0.18x of storing the
# file whole (creating ~1,700 files per 128 MiB), at 512 KiB 0.57-0.79x. A larger chunk
# moves more bytes around each change (the delta goal allows two chunks a changed place).
AVERAGE = 512 * 1024  # FastCDC's target; its real mean is about AVERAGE + MINIMUM
MINIMUM = 128 * 1024
MAXIMUM = 2 * 1024 * 1024
MAX_CHUNKS_PER_FILE = 1 << 20  # 1,048,576 chunks: over 512 GiB at the average size
MAX_CHUNK_LENGTH = 16 * 1024 * 1024  # a chunk a manifest may name: bounded reads everywhere


def chunk_list_problem(size: int, chunks: Sequence[tuple[int, int]]) -> str:
    """Why (offset, length) pairs cannot be the chunks of a file of `size` bytes, or "".

    They must start at 0, follow each other without gap or overlap, and end at `size`; each
    is at least 1 and at most MAX_CHUNK_LENGTH bytes, and there are at most
    MAX_CHUNKS_PER_FILE of them.
    """
    if len(chunks) > MAX_CHUNKS_PER_FILE:
        return f"has {len(chunks)} chunks, more than the {MAX_CHUNKS_PER_FILE} allowed"
    if not chunks:
        return "has an empty chunk list"
    end = 0
    for index, (offset, length) in enumerate(chunks):
        if offset != end:
            kind = "overlaps the one before" if offset < end else "leaves a gap before it"
            return f"chunk {index} at byte {offset} {kind} (expected byte {end})"
        if not 1 <= length <= MAX_CHUNK_LENGTH:
            return f"chunk {index} has length {length}, outside 1..{MAX_CHUNK_LENGTH}"
        end += length
    if end != size:
        return f"chunks add up to {end} bytes, but the file has {size}"
    return ""
