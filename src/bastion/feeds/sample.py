"""The bundled Binance sample: where it lives and how it is cut (reproducibly).

`make_sample` slices every capture file of the hftbacktest Binance capture to one common
receive-time window ``[t0, t0 + seconds)``, where ``t0`` is the earliest receive timestamp
over all files, so the slices stay time-aligned across venues. Lines are copied byte for
byte (the same parser reads the sample and the full capture) and recompressed with gzip
level 9, header mtime 0 and no file name, so the output bytes depend only on the input.
Files with no line in the window (the ``*_20240809`` continuations) are not written.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Final

import msgspec

from bastion.feeds.binance import iter_lines

__all__ = ["SAMPLE_SECONDS", "SampleFile", "make_sample", "sample_dir"]

SAMPLE_SECONDS: Final = 60
"""Window length of the bundled sample."""

NS_PER_S: Final = 1_000_000_000
sample_seconds_max: Final = 3600


class SampleFile(msgspec.Struct, frozen=True, kw_only=True):
    """One written slice.

    Attributes:
        name: file name (same as the source file).
        lines: lines copied.
        size_bytes: gzip file size.
        sha256: SHA-256 of the gzip bytes (stable for a given zlib build).
        content_sha256: SHA-256 of the decompressed lines (stable everywhere).
    """

    name: str
    lines: int
    size_bytes: int
    sha256: str
    content_sha256: str


def sample_dir() -> Path:
    """Directory of the bundled sample, ``bastion/data/hftbacktest_binance_btc_20240808``."""
    return Path(__file__).resolve().parent.parent / "data" / "hftbacktest_binance_btc_20240808"


def _first_recv_time_ns(path: Path) -> int:
    for line in iter_lines([path]):
        return int(line.partition(b" ")[0])
    raise ValueError(f"{path} is empty")


def make_sample(src_dir: Path, dst_dir: Path, seconds: int = SAMPLE_SECONDS) -> list[SampleFile]:
    """Write the first ``seconds`` of every ``*.gz`` capture in ``src_dir`` to ``dst_dir``.

    Args:
        src_dir: the capture directory (``shared/data/hftbacktest-binance-btc-20240808``).
        dst_dir: output directory (created if missing); files keep their names.
        seconds: window length, 1..3600.

    Returns:
        The files written, sorted by name.
    """
    assert 0 < seconds <= sample_seconds_max, seconds
    sources = sorted(src_dir.glob("*.gz"))
    assert sources, f"no .gz capture in {src_dir}"
    start_ns = min(_first_recv_time_ns(path) for path in sources)
    end_ns = start_ns + seconds * NS_PER_S
    dst_dir.mkdir(parents=True, exist_ok=True)
    written: list[SampleFile] = []
    for path in sources:
        if _first_recv_time_ns(path) >= end_ns:
            continue
        target = dst_dir / path.name
        lines_count, content_sha256 = _write_slice(path, target, end_ns)
        data = target.read_bytes()
        written.append(
            SampleFile(
                name=path.name,
                lines=lines_count,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                content_sha256=content_sha256,
            )
        )
    return written


def _write_slice(path: Path, target: Path, end_ns: int) -> tuple[int, str]:
    lines_count = 0
    content = hashlib.sha256()
    with target.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as out:
        for line in iter_lines([path]):  # capture lines are in receive-time order
            if int(line.partition(b" ")[0]) >= end_ns:
                break
            out.write(line + b"\n")
            content.update(line + b"\n")
            lines_count += 1
    assert lines_count > 0
    return lines_count, content.hexdigest()
