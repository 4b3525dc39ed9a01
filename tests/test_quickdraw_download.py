"""Tests of the Quick, Draw! downloader against a real loopback HTTP server (no mocks)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import logging
import re
import struct
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from pytest_labelquality import quickdraw
from pytest_labelquality.quickdraw import DownloadError, download_class, main

PREFIX = "/quickdraw/numpy_bitmap/"
ROW = 784


@dataclass
class FakeBucket:
    """What the loopback server serves, how it misbehaves, and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    bytes_served: int = 0
    drop_after: int | None = None  # cut the next longer body after this many bytes
    wrong_md5: bool = False
    ignore_range: bool = False
    url: str = ""

    def add(self, name: str, rows: int, *, seed: int = 0) -> tuple[np.ndarray, bytes]:
        array = np.random.default_rng(seed).integers(0, 256, size=(rows, ROW), dtype=np.uint8)
        buffer = io.BytesIO()
        np.save(buffer, array)
        self.files[name] = buffer.getvalue()
        return array, self.files[name]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, bucket: FakeBucket) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bucket = bucket


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        bucket = self.server.bucket
        wanted = self.headers.get("Range")
        bucket.requests.append((self.path, wanted))
        name = urllib.parse.unquote(self.path.removeprefix(PREFIX)).removesuffix(".npy")
        data = bucket.files.get(name)
        if data is None or not self.path.startswith(PREFIX):
            self.send_error(404)
            return
        start, end, status = 0, len(data), 200
        if wanted and not bucket.ignore_range:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted)
            assert match is not None
            start = int(match[1])
            end = min(int(match[2]) + 1, len(data)) if match[2] else len(data)
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        md5 = hashlib.md5(data + b"!" if bucket.wrong_md5 else data).digest()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.send_header("x-goog-hash", "crc32c=AAAAAA==")  # GCS sends two such headers
        self.send_header("x-goog-hash", f"md5={base64.b64encode(md5).decode()}")
        self.end_headers()
        body = data[start:end]
        if bucket.drop_after is not None and len(body) > bucket.drop_after:
            body, bucket.drop_after = body[: bucket.drop_after], None
            self.close_connection = True
        try:
            for i in range(0, len(body), 65536):
                chunk = body[i : i + 65536]
                bucket.bytes_served += len(chunk)  # before the write: the client may be quicker
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up on purpose (it had what it needed)


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBucket]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    state = FakeBucket()
    server = _Server(state)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}{PREFIX}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def header_length(path: Path) -> int:
    data = path.read_bytes()[:12]
    assert data[:6] == b"\x93NUMPY"
    return 10 + int(struct.unpack("<H", data[8:10])[0])


def test_full_download_is_byte_identical(bucket: FakeBucket, tmp_path: Path) -> None:
    _, raw = bucket.add("apple", 500)
    calls: list[tuple[int, int]] = []
    path = download_class(
        "apple", tmp_path / "data", base_url=bucket.url, progress=lambda d, t: calls.append((d, t))
    )
    assert path == tmp_path / "data" / "apple.npy"
    assert path.read_bytes() == raw
    assert sorted(p.name for p in path.parent.iterdir()) == ["apple.npy"]  # no .part, no sidecar
    assert bucket.requests == [(PREFIX + "apple.npy", None)]
    assert calls[-1] == (len(raw), len(raw))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_limit_fetches_only_header_and_rows(bucket: FakeBucket, tmp_path: Path) -> None:
    array, _ = bucket.add("apple", 500)
    path = download_class("apple", tmp_path, limit=100, base_url=bucket.url)
    assert np.array_equal(np.load(path), array[:100])
    mapped = np.load(path, mmap_mode="r")
    assert mapped.shape == (100, ROW)
    assert np.array_equal(mapped, array[:100])
    del mapped
    assert header_length(path) % 64 == 0
    assert bucket.bytes_served == header_length(path) + 100 * ROW
    assert all(rng is not None and rng.startswith("bytes=") for _, rng in bucket.requests)
    sidecar = tmp_path / "apple.npy.sha256"
    assert sidecar.read_text() == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  apple.npy\n"


def test_limit_beyond_rows_takes_whole_file(bucket: FakeBucket, tmp_path: Path) -> None:
    _, raw = bucket.add("apple", 50)
    path = download_class("apple", tmp_path, limit=1000, base_url=bucket.url)
    assert path.read_bytes() == raw
    assert not (tmp_path / "apple.npy.sha256").exists()
    seen = len(bucket.requests)
    download_class("apple", tmp_path, limit=1000, base_url=bucket.url)
    assert len(bucket.requests) == seen


def test_header_is_rewritten_and_realigned(bucket: FakeBucket, tmp_path: Path) -> None:
    """A source header of unusual length (old numpy aligned to 16) gets numpy's 64-byte one."""
    array = np.arange(30 * ROW, dtype=np.uint8).reshape(30, ROW)
    text = "{'descr': '|u1', 'fortran_order': False, 'shape': (30, 784), }"
    text += " " * (80 - 10 - len(text) - 1) + "\n"
    bucket.files["old"] = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()
    bucket.files["old"] += array.tobytes()
    assert np.array_equal(np.load(io.BytesIO(bucket.files["old"])), array)
    path = download_class("old", tmp_path, limit=7, base_url=bucket.url)
    assert header_length(path) == 128
    assert np.array_equal(np.load(path), array[:7])
    assert np.array_equal(np.load(path, mmap_mode="r"), array[:7])


def test_npy_header_matches_numpy() -> None:
    for rows in (0, 7, 3000, 12345):
        buffer = io.BytesIO()
        np.save(buffer, np.zeros((rows, ROW), dtype=np.uint8))
        expected = buffer.getvalue()[: len(buffer.getvalue()) - rows * ROW]
        assert quickdraw._npy_header("|u1", (rows, ROW)) == expected


def test_interrupted_download_resumes(bucket: FakeBucket, tmp_path: Path) -> None:
    _, raw = bucket.add("apple", 500)
    bucket.drop_after = 100_000
    with pytest.raises(DownloadError, match="resume"):
        download_class("apple", tmp_path, base_url=bucket.url)
    part = tmp_path / "apple.npy.part"
    assert part.stat().st_size == 100_000
    assert not (tmp_path / "apple.npy").exists()
    served = bucket.bytes_served
    path = download_class("apple", tmp_path, base_url=bucket.url)
    assert bucket.requests[-1][1] == "bytes=100000-"
    assert bucket.bytes_served - served == len(raw) - 100_000
    assert path.read_bytes() == raw  # MD5 of the whole object verified across both runs
    assert not part.exists()


def test_interrupted_limited_download_resumes(bucket: FakeBucket, tmp_path: Path) -> None:
    array, _ = bucket.add("apple", 500)
    bucket.drop_after = 50_000
    with pytest.raises(DownloadError, match="resume"):
        download_class("apple", tmp_path, limit=300, base_url=bucket.url)
    size = (tmp_path / "apple.npy.part").stat().st_size
    assert 50_000 < size < 128 + 300 * ROW
    path = download_class("apple", tmp_path, limit=300, base_url=bucket.url)
    assert bucket.requests[-1][1] == f"bytes={size}-{128 + 300 * ROW - 1}"
    assert np.array_equal(np.load(path), array[:300])


def test_part_of_larger_request_is_reused(bucket: FakeBucket, tmp_path: Path) -> None:
    array, raw = bucket.add("apple", 500)
    (tmp_path / "apple.npy.part").write_bytes(raw[:200_000])
    path = download_class("apple", tmp_path, limit=100, base_url=bucket.url)
    assert bucket.requests == []
    assert np.array_equal(np.load(path), array[:100])


def test_server_ignoring_range_restarts_cleanly(bucket: FakeBucket, tmp_path: Path) -> None:
    _, raw = bucket.add("apple", 500)
    bucket.ignore_range = True
    (tmp_path / "apple.npy.part").write_bytes(b"\x93NUMPY garbage from an earlier run" * 100)
    path = download_class("apple", tmp_path, base_url=bucket.url)
    assert bucket.requests[0][1] == "bytes=3400-"  # asked to resume, got a 200
    assert path.read_bytes() == raw


def test_server_ignoring_range_with_limit(bucket: FakeBucket, tmp_path: Path) -> None:
    array, _ = bucket.add("apple", 500)
    bucket.ignore_range = True
    path = download_class("apple", tmp_path, limit=20, base_url=bucket.url)
    assert np.array_equal(np.load(path), array[:20])


def test_complete_part_answered_416_starts_over(bucket: FakeBucket, tmp_path: Path) -> None:
    _, raw = bucket.add("apple", 40)
    (tmp_path / "apple.npy.part").write_bytes(raw)
    path = download_class("apple", tmp_path, base_url=bucket.url)
    assert [rng for _, rng in bucket.requests] == [f"bytes={len(raw)}-", None]
    assert path.read_bytes() == raw


def test_wrong_md5_raises_and_leaves_nothing(bucket: FakeBucket, tmp_path: Path) -> None:
    bucket.add("apple", 100)
    bucket.wrong_md5 = True
    with pytest.raises(DownloadError, match=r"MD5 \w+ differs from the server"):
        download_class("apple", tmp_path, base_url=bucket.url)
    assert list(tmp_path.iterdir()) == []


def test_known_md5_table_is_checked(bucket: FakeBucket, tmp_path: Path) -> None:
    array, _ = bucket.add("cat", 100)  # not Google's cat.npy, though the server's MD5 fits
    with pytest.raises(DownloadError, match="known e4bb2f2c"):
        download_class("cat", tmp_path, base_url=bucket.url)
    assert list(tmp_path.iterdir()) == []
    path = download_class("cat", tmp_path, limit=10, base_url=bucket.url)  # no whole-file hash
    assert np.array_equal(np.load(path), array[:10])


def test_existing_valid_files_are_not_downloaded_again(
    bucket: FakeBucket, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket.add("apple", 200)
    full = download_class("apple", tmp_path / "full", base_url=bucket.url)
    limited = download_class("apple", tmp_path / "lim", limit=50, base_url=bucket.url)
    seen = len(bucket.requests)
    with caplog.at_level(logging.INFO, logger=quickdraw.__name__):
        assert download_class("apple", tmp_path / "full", base_url=bucket.url) == full
        assert download_class("apple", tmp_path / "lim", limit=50, base_url=bucket.url) == limited
        assert download_class("apple", tmp_path / "full", limit=500, base_url=bucket.url) == full
    assert len(bucket.requests) == seen
    assert caplog.text.count("skipping") == 3


def test_existing_file_for_another_limit_is_replaced(bucket: FakeBucket, tmp_path: Path) -> None:
    array, raw = bucket.add("apple", 200)
    download_class("apple", tmp_path, limit=50, base_url=bucket.url)
    path = download_class("apple", tmp_path, limit=80, base_url=bucket.url)
    assert np.array_equal(np.load(path), array[:80])
    path = download_class("apple", tmp_path, base_url=bucket.url)  # limited file is not whole
    assert path.read_bytes() == raw
    assert not (tmp_path / "apple.npy.sha256").exists()


def test_corrupted_limited_file_is_downloaded_again(bucket: FakeBucket, tmp_path: Path) -> None:
    array, _ = bucket.add("apple", 200)
    path = download_class("apple", tmp_path, limit=100, base_url=bucket.url)
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    seen = len(bucket.requests)
    download_class("apple", tmp_path, limit=100, base_url=bucket.url)
    assert len(bucket.requests) > seen
    assert np.array_equal(np.load(path), array[:100])


def test_truncated_full_file_is_downloaded_again(bucket: FakeBucket, tmp_path: Path) -> None:
    _, raw = bucket.add("apple", 100)
    path = download_class("apple", tmp_path, base_url=bucket.url)
    path.write_bytes(raw[:-1])
    download_class("apple", tmp_path, base_url=bucket.url)
    assert path.read_bytes() == raw


def test_class_name_with_space_is_quoted(bucket: FakeBucket, tmp_path: Path) -> None:
    _, raw = bucket.add("The Eiffel Tower", 30)
    path = download_class("The Eiffel Tower", tmp_path, base_url=bucket.url)
    assert bucket.requests[0][0] == PREFIX + "The%20Eiffel%20Tower.npy"
    assert path == tmp_path / "The Eiffel Tower.npy"
    assert path.read_bytes() == raw
    assert quickdraw.class_url("The Eiffel Tower") == (
        "https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap/The%20Eiffel%20Tower.npy"
    )


@pytest.mark.parametrize("name", ["", "..", "a/b", "a\\b"])
def test_unsafe_class_names_are_rejected(name: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="invalid class name"):
        download_class(name, tmp_path, base_url="http://127.0.0.1:9/")


def test_cli_downloads_classes(
    bucket: FakeBucket, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apple, _ = bucket.add("apple", 300, seed=1)
    pear, _ = bucket.add("pear", 300, seed=2)
    dest = tmp_path / "out"
    argv = ["apple", "pear", "--limit", "200", "--dest", str(dest), "--base-url", bucket.url]
    assert main(argv) == 0
    assert np.array_equal(np.load(dest / "apple.npy"), apple[:200])
    assert np.array_equal(np.load(dest / "pear.npy"), pear[:200])
    err = capsys.readouterr().err
    assert "apple: 100%" in err
    assert "pear: 100%" in err
    assert main(argv) == 0
    assert "skipping" in capsys.readouterr().err


def test_cli_missing_class_fails_with_one_line(
    bucket: FakeBucket, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["nope", "--dest", str(tmp_path), "--base-url", bucket.url]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("error: nope: HTTP 404")
    assert "Traceback" not in err
    assert not (tmp_path / "nope.npy").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_output() -> None:
    tty = _Terminal()
    bar = quickdraw._ProgressBar("cat", tty)
    for done in range(0, 1001, 50):
        bar(done, 1000)
    bar.finish()
    assert tty.getvalue().count("\r") == 21
    assert tty.getvalue().endswith("100% 0.0/0.0 MB\n")
    log = io.StringIO()
    bar = quickdraw._ProgressBar("cat", log)
    for done in range(0, 1001, 7):
        bar(done, 1000)
    bar.finish()
    lines = log.getvalue().splitlines()
    assert lines[0] == "cat:   0% (0/1000 bytes)"
    assert len(lines) == 10  # 0%, 10%, ... 90% (1001 is not a multiple of 7)


def test_module_runs_as_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest_labelquality.quickdraw", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0
    assert "--limit" in result.stdout
