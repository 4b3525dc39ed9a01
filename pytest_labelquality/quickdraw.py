"""Download Google's Quick, Draw! numpy bitmaps: streamed, resumable and checksummed.

Usage: ``python -m pytest_labelquality.quickdraw cat dog --limit 3000 --dest data``.
"""

from __future__ import annotations

import argparse
import ast
import base64
import binascii
import hashlib
import http.client
import logging
import os
import re
import shutil
import struct
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO, cast

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_BASE_URL",
    "KNOWN_MD5",
    "DownloadError",
    "download_class",
    "main",
]

DEFAULT_BASE_URL = "https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap/"
#: MD5 of complete class files as published by Google.
KNOWN_MD5: dict[str, str] = {
    "cat": "e4bb2f2c14813c33b9bcc21e06eacb43",
    "dog": "2fe0fc7ead8694479b9df60cbc16865e",
}
CHUNK_SIZE = 1 << 20
_PROBE_SIZE = 1024  # first request of a limited download; holds any numpy-written 2-D header
_MAX_HEADER = 1 << 20
_MAGIC = b"\x93NUMPY"
_ALIGN = 64
_GROWTH_AXIS_MAX_DIGITS = 21  # numpy pads the header so the first axis can grow in place
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_DESCR = re.compile(r"[<>|=]?[biuf](\d+)")

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class DownloadError(Exception):
    """A Quick, Draw! download failed, was cut short or did not verify."""


class _RangeNotSatisfiable(DownloadError):
    """The server answered 416 to a Range request."""


@dataclass(frozen=True)
class _Header:
    """The parts of a .npy header needed to slice rows."""

    descr: str
    shape: tuple[int, int]
    row_bytes: int
    length: int  # offset of the first data byte

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def file_size(self) -> int:
        return self.length + self.rows * self.row_bytes


def _parse_header(prefix: bytes) -> _Header | None:
    """Parse the .npy header at the start of ``prefix``; None when more bytes are needed."""
    if prefix[: len(_MAGIC)] != _MAGIC[: len(prefix)]:
        raise DownloadError("not a .npy file (bad magic bytes)")
    if len(prefix) < 10:
        return None
    major = prefix[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", prefix[8:10])
        start = 10
    elif major in (2, 3):
        if len(prefix) < 12:
            return None
        (hlen,) = struct.unpack("<I", prefix[8:12])
        start = 12
    else:
        raise DownloadError(f"unsupported .npy format version {major}.{prefix[7]}")
    end = start + hlen
    if hlen > _MAX_HEADER:
        raise DownloadError(f".npy header too long ({hlen} bytes)")
    if len(prefix) < end:
        return None
    try:
        meta = ast.literal_eval(prefix[start:end].decode("utf-8" if major == 3 else "latin1"))
    except (SyntaxError, ValueError, TypeError, RecursionError, UnicodeDecodeError) as exc:
        raise DownloadError(f"unreadable .npy header ({exc})") from exc
    if not isinstance(meta, dict) or set(meta) != {"descr", "fortran_order", "shape"}:
        raise DownloadError(f"unexpected .npy header {meta!r}")
    descr, shape = meta["descr"], meta["shape"]
    match = _DESCR.fullmatch(descr) if isinstance(descr, str) else None
    if (
        match is None
        or meta["fortran_order"] is not False
        or not isinstance(shape, tuple)
        or len(shape) != 2
        or not all(type(dim) is int and dim >= 0 for dim in shape)
    ):
        raise DownloadError(f"unexpected .npy header {meta!r}: need a C-order 2-D plain array")
    return _Header(descr, (shape[0], shape[1]), shape[1] * int(match[1]), end)


def _npy_header(descr: str, shape: tuple[int, int]) -> bytes:
    """Build a .npy header laid out exactly as ``np.save`` does (64-byte aligned)."""
    text = "{" + f"'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, " + "}"
    text += " " * (_GROWTH_AXIS_MAX_DIGITS - len(repr(shape[0])))
    body = len(text) + 1  # the trailing newline
    major, fmt = (1, "<H") if body + _ALIGN < 1 << 16 else (2, "<I")
    pad = _ALIGN - (len(_MAGIC) + 2 + struct.calcsize(fmt) + body) % _ALIGN
    head = _MAGIC + bytes([major, 0]) + struct.pack(fmt, body + pad)
    return head + (text + " " * pad + "\n").encode("latin1")


def _read_header(path: Path) -> _Header | None:
    """Parse the header of a local .npy file; None if the file is too short to hold one."""
    with path.open("rb") as fh:
        prefix = fh.read(4096)
        header = _parse_header(prefix)
        if header is None and len(prefix) == 4096:
            header = _parse_header(prefix + fh.read(_MAX_HEADER))
    return header


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _hash_file(path: Path, hasher: hashlib._Hash, limit: int | None = None) -> hashlib._Hash:
    """Feed (the first ``limit`` bytes of) ``path`` to ``hasher`` in chunks."""
    left = limit
    with path.open("rb") as fh:
        while left is None or left > 0:
            chunk = fh.read(CHUNK_SIZE if left is None else min(CHUNK_SIZE, left))
            if not chunk:
                break
            hasher.update(chunk)
            if left is not None:
                left -= len(chunk)
    return hasher


def _sha256(path: Path) -> str:
    return _hash_file(path, hashlib.sha256()).hexdigest()


def _md5(path: Path) -> str:
    return _hash_file(path, hashlib.md5(usedforsecurity=False)).hexdigest()


def _open(url: str, start: int, end: int | None, *, timeout: float) -> http.client.HTTPResponse:
    """GET ``url``, asking for bytes ``[start, end)`` when that is not the whole object."""
    headers = {"User-Agent": "pytest-labelquality-quickdraw"}
    if start or end is not None:
        headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
    request = urllib.request.Request(url, headers=headers)
    try:
        # A fresh opener per call honours the current *_proxy environment.
        response = urllib.request.build_opener().open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416:
            raise _RangeNotSatisfiable(f"HTTP 416 Range Not Satisfiable for {url}") from None
        raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"cannot fetch {url}: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot fetch {url}: {exc}") from exc
    return cast(http.client.HTTPResponse, response)


def _span(response: http.client.HTTPResponse) -> tuple[int, int | None]:
    """Return (offset of the first body byte, size of the whole object or None)."""
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None:
            raise DownloadError("206 response without a usable Content-Range header")
        return int(match[1]), None if match[3] == "*" else int(match[3])
    length = response.headers.get("Content-Length", "").strip()
    return 0, int(length) if length.isdigit() else None


def _goog_md5(response: http.client.HTTPResponse) -> str | None:
    """The whole-object MD5 (hex) from GCS's ``x-goog-hash`` header(s), if sent."""
    values = response.headers.get_all("x-goog-hash") or []
    for item in ",".join(values).split(","):
        key, _, value = item.strip().partition("=")
        if key.lower() == "md5":
            try:
                return base64.b64decode(value, validate=True).hex()
            except binascii.Error:
                log.warning("ignoring malformed x-goog-hash md5 %r", value)
    return None


def _open_part(part: Path, offset: int) -> IO[bytes]:
    """Open ``part`` for writing at ``offset``, dropping anything after it."""
    fh = part.open("r+b") if offset else part.open("wb")
    fh.seek(offset)
    fh.truncate()
    return fh


def _copy(
    response: http.client.HTTPResponse,
    out: IO[bytes],
    count: int | None,
    *,
    done: int,
    total: int,
    progress: Progress | None,
    hasher: hashlib._Hash | None = None,
) -> int:
    """Stream up to ``count`` bytes (None: until EOF) into ``out``; return how many arrived."""
    copied = 0
    try:
        while count is None or copied < count:
            chunk = response.read(CHUNK_SIZE if count is None else min(CHUNK_SIZE, count - copied))
            if not chunk:
                break
            out.write(chunk)
            if hasher is not None:
                hasher.update(chunk)
            copied += len(chunk)
            if progress is not None:
                progress(done + copied, total)
    except (OSError, http.client.HTTPException) as exc:
        out.flush()
        raise DownloadError(
            f"interrupted after {done + copied} bytes ({exc}); run again to resume"
        ) from exc
    return copied


def _fetch_range(
    url: str, part: Path, start: int, end: int, *, timeout: float, progress: Progress | None
) -> int:
    """Append bytes ``[start, end)`` of ``url`` to ``part`` (restarting on a 200); new size."""
    with _open(url, start, end, timeout=timeout) as response:
        first, _ = _span(response)
        if first not in (start, 0):
            raise DownloadError(f"server sent bytes from {first}, expected {start}")
        if first != start:
            log.info("server ignored the Range request; restarting %s from scratch", part.name)
        with _open_part(part, first) as fh:
            _copy(response, fh, end - first, done=first, total=end, progress=progress)
    return _size(part)


def _ensure_header(url: str, part: Path, *, timeout: float) -> _Header:
    """Parse the header from ``part``, first fetching its leading bytes if needed."""
    try:
        header = _read_header(part) if part.exists() else None
    except DownloadError:
        part.unlink()  # leftovers of something else: start over
        header = None
    while header is None:
        size = _size(part)
        if (
            _fetch_range(url, part, size, size + _PROBE_SIZE, timeout=timeout, progress=None)
            <= size
        ):
            raise DownloadError(f"{url} ended before its .npy header did")
        try:
            header = _read_header(part)
        except DownloadError:
            part.unlink()
            raise
    return header


def _rewrite_header(part: Path, header: _Header, rows: int) -> None:
    """Replace the header of ``part`` with one for ``rows`` rows, realigned to 64 bytes."""
    new = _npy_header(header.descr, (rows, header.shape[1]))
    if len(new) == header.length:
        with part.open("r+b") as fh:
            fh.write(new)
        return
    tmp = part.with_name(part.name + ".tmp")
    with part.open("rb") as src, tmp.open("wb") as dst:
        dst.write(new)
        src.seek(header.length)
        shutil.copyfileobj(src, dst, CHUNK_SIZE)
    os.replace(tmp, part)


def _download_rows(
    url: str, part: Path, limit: int, *, timeout: float, progress: Progress | None
) -> _Header | None:
    """Fetch the header and first ``limit`` rows into ``part``; None if that is the whole file."""
    header = _ensure_header(url, part, timeout=timeout)
    if header.rows <= limit:
        return None
    end = header.length + limit * header.row_bytes
    size = _size(part)
    if size > end:  # e.g. the .part of a larger request: it is still a prefix of the object
        with part.open("r+b") as fh:
            fh.truncate(end)
        size = end
    if size < end:
        if progress is not None:
            progress(size, end)
        size = _fetch_range(url, part, size, end, timeout=timeout, progress=progress)
    if size != end:
        raise DownloadError(f"connection closed after {size} of {end} bytes; run again to resume")
    _rewrite_header(part, header, limit)
    return header


def _download_whole(
    url: str, part: Path, name: str, *, timeout: float, progress: Progress | None
) -> None:
    """Fetch (or resume) the whole object into ``part`` and verify size, MD5 and header."""
    for _attempt in range(2):
        offset = _size(part)
        try:
            response = _open(url, offset, None, timeout=timeout)
        except _RangeNotSatisfiable:
            if not offset:
                raise
            log.info("%s does not fit the server's file; starting over", part.name)
            part.unlink()
            continue
        with response:
            first, total = _span(response)
            if first != offset:
                if first != 0:
                    raise DownloadError(f"server sent bytes from {first}, expected {offset}")
                log.info("server ignored the Range request; restarting %s", part.name)
                offset = 0
            remote_md5 = _goog_md5(response)
            md5 = hashlib.md5(usedforsecurity=False)
            if offset:
                _hash_file(part, md5, offset)
            with _open_part(part, offset) as fh:
                count = None if total is None else total - offset
                done = offset + _copy(
                    response,
                    fh,
                    count,
                    done=offset,
                    total=total or 0,
                    progress=progress,
                    hasher=md5,
                )
        if total is not None and done < total:
            raise DownloadError(
                f"connection closed after {done} of {total} bytes; run again to resume"
            )
        _verify_whole(part, name, md5.hexdigest(), remote_md5)
        return
    raise DownloadError(f"server rejected the Range request for {url} twice")


def _verify_whole(part: Path, name: str, md5: str, remote_md5: str | None) -> None:
    """Check a complete download; delete it and raise DownloadError if anything is off."""
    problems = []
    if remote_md5 is not None and md5 != remote_md5:
        problems.append(f"MD5 {md5} differs from the server's {remote_md5}")
    known = KNOWN_MD5.get(name)
    if known is not None and md5 != known:
        problems.append(f"MD5 {md5} differs from the known {known}")
    try:
        header = _read_header(part)
    except DownloadError as exc:
        problems.append(str(exc))
    else:
        size = _size(part)
        if header is None or header.file_size != size:
            problems.append(f"{size} bytes do not match the .npy header")
    if problems:
        part.unlink(missing_ok=True)
        raise DownloadError(f"verification failed ({'; '.join(problems)}); download deleted")


def _existing_problem(final: Path, sidecar: Path, name: str, limit: int | None) -> str | None:
    """Why ``final`` cannot serve this request, or None if it can.

    A ``.sha256`` sidecar marks a limited download; a file without one is a whole class.
    """
    if not final.exists():
        return "not downloaded yet"
    try:
        header = _read_header(final)
    except DownloadError as exc:
        return str(exc)
    if header is None or header.file_size != _size(final):
        return "the file is truncated or malformed"
    if sidecar.exists():
        if limit is None:
            return f"it holds only the first {header.rows} drawings"
        if header.rows != limit:
            return f"it holds {header.rows} drawings, {limit} requested"
        try:
            expected = sidecar.read_text(encoding="ascii").split()[0]
        except (OSError, UnicodeDecodeError, IndexError):
            return "its .sha256 sidecar is unreadable"
        if _sha256(final) != expected.lower():
            return "its SHA-256 does not match the .sha256 sidecar (corrupted)"
        return None
    if limit is not None and header.rows > limit:
        return f"it holds {header.rows} drawings, {limit} requested"
    known = KNOWN_MD5.get(name)
    if known is not None and _md5(final) != known:
        return "its MD5 does not match the published one (corrupted)"
    return None


def _check_name(name: str) -> None:
    if not name or name in {".", ".."} or any(c in name for c in "/\\\0"):
        raise DownloadError(f"invalid class name {name!r}")


def class_url(name: str, *, base_url: str = DEFAULT_BASE_URL) -> str:
    """The URL of ``<name>.npy`` under ``base_url`` (the name is URL-quoted)."""
    return base_url.rstrip("/") + "/" + urllib.parse.quote(f"{name}.npy", safe="")


def download_class(
    name: str,
    dest: Path,
    *,
    limit: int | None = None,
    base_url: str = DEFAULT_BASE_URL,
    progress: Callable[[int, int], None] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``<name>.npy`` (only its first ``limit`` drawings if given) into ``dest``."""
    _check_name(name)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / f"{name}.npy"
    part = dest / f"{name}.npy.part"
    sidecar = dest / f"{name}.npy.sha256"
    problem = _existing_problem(final, sidecar, name, limit)
    if problem is None:
        log.info("%s: %s is already present and valid; skipping download", name, final)
        return final
    if final.exists():
        log.info("%s: downloading again: %s", name, problem)
    url = class_url(name, base_url=base_url)
    if part.exists():
        log.info("%s: resuming from %s (%d bytes)", name, part, _size(part))
    header = None
    if limit is not None:
        header = _download_rows(url, part, limit, timeout=timeout, progress=progress)
    if header is None:
        _download_whole(url, part, name, timeout=timeout, progress=progress)
        os.replace(part, final)
        sidecar.unlink(missing_ok=True)  # after the replace: a crash leaves a detectable mismatch
    else:
        tmp = sidecar.with_name(sidecar.name + ".part")
        tmp.write_text(f"{_sha256(part)}  {final.name}\n", encoding="ascii")
        os.replace(tmp, sidecar)
        os.replace(part, final)
    log.info("%s: wrote %s", name, final)
    return final


class _ProgressBar:
    """Text progress bar: redrawn in place on a TTY, one line per ~10% otherwise."""

    def __init__(self, label: str, stream: TextIO) -> None:
        self.label = label
        self.stream = stream
        self.tty = stream.isatty()
        self.step = -1
        self.open_line = False

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            if self.tty:
                self.stream.write(f"\r{self.label}: {done / 1e6:.1f} MB")
                self.open_line = True
            return
        frac = min(done / total, 1.0)
        if self.tty:
            bar = "#" * int(frac * 30)
            self.stream.write(
                f"\r{self.label} [{bar:<30}] {frac:4.0%} {done / 1e6:.1f}/{total / 1e6:.1f} MB"
            )
            self.stream.flush()
            self.open_line = True
        elif int(frac * 10) > self.step:
            self.step = int(frac * 10)
            self.stream.write(f"{self.label}: {frac:4.0%} ({done}/{total} bytes)\n")

    def finish(self) -> None:
        if self.open_line:
            self.stream.write("\n")
            self.open_line = False


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def main(argv: list[str] | None = None) -> int:
    """Command line: download the named classes; 0 on success, 1 on a download error."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_labelquality.quickdraw",
        description="Download Quick, Draw! numpy bitmaps (N x 784 uint8, one 28x28 drawing a row).",
    )
    parser.add_argument("classes", nargs="+", metavar="CLASS", help='e.g. cat "The Eiffel Tower"')
    parser.add_argument("--limit", type=_count, help="keep only the first N drawings of a class")
    parser.add_argument("--dest", type=Path, default=Path(), help="output directory (default: .)")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help="bucket URL (for mirrors)")
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds")
    args = parser.parse_args(argv)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    old_level, old_propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        for name in args.classes:
            bar = _ProgressBar(name, sys.stderr)
            try:
                download_class(
                    name,
                    args.dest,
                    limit=args.limit,
                    base_url=args.base_url,
                    progress=bar,
                    timeout=args.timeout,
                )
            except (DownloadError, OSError) as exc:
                bar.finish()
                print(f"error: {name}: {exc}", file=sys.stderr)
                return 1
            bar.finish()
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
        log.propagate = old_propagate
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
