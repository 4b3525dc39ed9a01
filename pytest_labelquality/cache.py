"""A content-addressed, disposable cache of arrays: atomic writes, checked reads; an entry that
is corrupt or does not fit the run is recomputed, never trusted.

The root is a local folder (the default and the fast path: a temporary file, then
``os.replace``) or an fsspec URL such as ``s3://bucket/label-quality`` that every worker of a
cluster reaches: an object is written whole under a temporary key, then moved to its own (on
object stores, a server-side copy: readers see the old object or the new one, never a part)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_labelquality.errors import CacheError, os_error_message

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Arrays = Mapping[str, npt.NDArray[Any]]

#: Where a cache lives: a local folder, or an fsspec URL (a string with ``://``).
CacheRoot = Path | str
#: An entry's expected arrays: name -> (dtype kinds such as "iu", shape of sizes or size names).
Expect = Mapping[str, tuple[str, tuple[int | str | None, ...]]]
DIGEST = "__digest__"
CACHE_HINT = (
    "point --label-quality-cache-dir (or $LABEL_QUALITY_CACHE_DIR) at a writable folder with"
    " free space"
)
FSSPEC_MISSING = (
    "a cache URL needs fsspec (and the package of its protocol, e.g. s3fs), which is not"
    " installed: pip install 'pytest-labelquality[fsspec]' s3fs"
)


#: Seconds an object store may take to connect or to answer one request before the run fails
#: naming it; ``$LABEL_QUALITY_CACHE_TIMEOUT`` changes it.
REMOTE_TIMEOUT = 120.0
TIMEOUT_ENV = "LABEL_QUALITY_CACHE_TIMEOUT"


def remote_timeout() -> float:
    """The object store's deadline per request: ``$LABEL_QUALITY_CACHE_TIMEOUT`` or 120 s."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else REMOTE_TIMEOUT
    except ValueError:
        raise CacheError(f"${TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise CacheError(f"${TIMEOUT_ENV} must be above 0, got {raw!r}")
    return value


def _deadlines(root: str) -> dict[str, Any]:
    """Filesystem options that bound every wait of a protocol known to wait forever otherwise
    (S3's default read timeout is a minute, retried, against an endpoint that never answers)."""
    if root.partition("://")[0] not in ("s3", "s3a"):
        return {}
    timeout = remote_timeout()
    retries = {"max_attempts": 2, "mode": "standard"}
    return {
        "config_kwargs": {"connect_timeout": timeout, "read_timeout": timeout, "retries": retries}
    }


def is_url(root: CacheRoot) -> bool:
    """Whether ``root`` names an fsspec location rather than a local folder."""
    return isinstance(root, str) and "://" in root and not root.startswith("file://")


def cache_root(value: str) -> CacheRoot:
    """A cache setting as a root: URLs stay strings, anything else is a path."""
    if value.startswith("file://"):
        return Path(value.removeprefix("file://"))
    return value if is_url(value) else Path(value)


def fingerprint(*parts: Any) -> str:
    """A hex digest of strings, bytes, JSON-able values and arrays (dtype and shape included)."""
    import numpy as np

    digest = hashlib.blake2b(digest_size=20)
    for part in parts:
        if isinstance(part, np.ndarray) and part.dtype == object:  # texts
            digest.update(f"objects:{part.shape}".encode())
            for value in part.reshape(-1):
                digest.update(str(value).encode() + b"\x00")
        elif isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            digest.update(f"ndarray:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.reshape(-1).view(np.uint8).data)
        elif isinstance(part, bytes):
            digest.update(b"bytes:" + part)
        else:
            digest.update(b"json:" + json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


class ArrayCache:
    """Entries of named arrays under ``root``, one ``.npz`` file per key.

    Each entry carries a digest of its arrays. An entry that cannot be read, fails its digest
    or does not have the names, types and shapes the caller expects counts as missing: it is
    removed and ``on_repair`` hears why, so the caller recomputes it and can warn.
    """

    def __init__(self, root: CacheRoot, on_repair: Callable[[str], None] | None = None) -> None:
        self.root = root
        self.on_repair = on_repair
        self.remote = _Remote(str(root)) if is_url(root) else None

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives in a local cache."""
        assert isinstance(self.root, Path), "a cache at a URL has no local paths"
        return self.root / key[:2] / f"{key}.npz"

    def where(self, key: str) -> str:
        """Where the entry for ``key`` lives, as a path or URL (for messages)."""
        return self.remote.url(key, ".npz") if self.remote else str(self.path(key))

    def check_usable(self) -> None:
        """Raise :class:`CacheError` unless entries can be written under ``root``."""
        if self.remote is not None:
            self.remote.probe()
            return
        assert isinstance(self.root, Path)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as exc:
            message = os_error_message(exc, "cannot use the cache folder", CACHE_HINT, self.root)
            raise CacheError(message) from None

    def load(self, key: str, expect: Expect | None = None) -> dict[str, npt.NDArray[Any]] | None:
        """The entry's arrays, or None if absent or unusable (then removed and reported).

        ``expect`` maps array names to ``(dtype kinds, shape)``; a dimension is a number, a
        name that must be the same size wherever it appears, or None for any size."""
        import numpy as np

        try:
            if self.remote is not None:
                blob = self.remote.read(key, ".npz")
                if blob is None:
                    return None
                with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
                    arrays = {name: archive[name] for name in archive.files}
            else:
                path = self.path(key)
                if not path.exists() and not path.is_symlink():
                    return None
                with path.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
                    arrays = {name: archive[name] for name in archive.files}
        except Exception as exc:  # truncated, garbage, a folder: recomputed, never trusted
            self.discard(key, f"unreadable ({type(exc).__name__}: {exc})")
            return None
        digest = arrays.pop(DIGEST, None)
        if digest is None or str(digest) != _digest(arrays):
            self.discard(key, "failed its checksum")
            return None
        problem = mismatch(arrays, expect or {})
        if problem:
            self.discard(key, problem)
            return None
        return arrays

    def discard(self, key: str, why: str) -> None:
        """Remove an unusable entry (and the model saved beside it) and report why."""
        if self.remote is not None:
            self.remote.remove(key)
        else:
            path = self.path(key)
            for stale in (path, *path.parent.glob(f"{key}.*")):
                with contextlib.suppress(OSError):
                    if stale.is_dir() and not stale.is_symlink():
                        shutil.rmtree(stale)
                    else:
                        stale.unlink(missing_ok=True)
        if self.on_repair is not None:
            self.on_repair(f"cache entry {self.where(key)} was {why}; recomputed it")

    def save(self, key: str, arrays: Arrays) -> None:
        """Write an entry atomically: a temporary file in the same folder, then ``os.replace``.

        Raises :class:`CacheError` when the cache cannot take it (full disk, no permission)."""
        import numpy as np

        entry = {**arrays, DIGEST: np.array(_digest(arrays))}
        if self.remote is not None:
            buffer = io.BytesIO()
            typing.cast(Any, np.savez)(buffer, **entry)
            self.remote.write(key, ".npz", buffer.getvalue())
            return
        path = self.path(key)
        tmp = None
        try:
            if path.parent.is_file():  # something else squats on the shard's name: ours to clear
                path.parent.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
            with os.fdopen(fd, "wb") as handle:
                typing.cast(Any, np.savez)(handle, **entry)
            os.replace(tmp, path)
        except OSError as exc:
            message = os_error_message(exc, "cannot write the cache entry", CACHE_HINT, path)
            raise CacheError(message) from None
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    def put_file(self, key: str, source: Path) -> None:
        """Store the file ``source`` beside the entry for ``key`` (a fold's model), under its
        suffix; local caches write it in place, so this is for a cache at a URL."""
        assert self.remote is not None, "a local cache's files are written in place"
        self.remote.put(key, source)

    @contextlib.contextmanager
    def local_files(self, key: str) -> Iterator[Path]:
        """A local stem whose suffixed files are those kept beside ``key``'s entry: the cache's
        own for a local cache, downloaded copies (gone after the block) for a URL."""
        if self.remote is None:
            yield self.path(key).with_suffix("")
            return
        with tempfile.TemporaryDirectory(prefix="label-quality-") as folder:
            yield self.remote.fetch(key, Path(folder))


class _Remote:
    """A cache's objects at an fsspec URL: ``<root>/<2 hex>/<key><suffix>``."""

    def __init__(self, root: str) -> None:
        try:
            import fsspec
        except ImportError:
            raise CacheError(FSSPEC_MISSING) from None
        try:
            self.fs, self.base = fsspec.core.url_to_fs(root, **_deadlines(root))
        except (ImportError, ValueError, OSError) as exc:  # an unknown protocol, its package
            # missing, or a chained URL's archive absent (zip://x::file:///missing.zip)
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise CacheError(f"cannot use the cache URL {root}: {why}; {CACHE_HINT}") from None
        self.root = root.rstrip("/")
        self.timeout = remote_timeout()

    def _call(self, method: str, *args: Any) -> Any:
        """``fs.<method>(*args)``, with a deadline on asynchronous stores (S3, GCS, HTTP): their
        coroutine ``_<method>`` runs on fsspec's loop for at most :attr:`timeout` seconds."""
        coroutine = getattr(self.fs, f"_{method}", None) if self.fs.async_impl else None
        if coroutine is None:  # a blocking store: its own calls, as they wait
            return getattr(self.fs, "mv" if method == "mv_file" else method)(*args)
        from fsspec.asyn import sync
        from fsspec.exceptions import FSTimeoutError

        try:
            return sync(self.fs.loop, coroutine, *args, timeout=self.timeout)
        except FSTimeoutError:
            raise CacheError(
                f"the cache at {self.root} did not answer within {self.timeout:g} s ({method});"
                f" check its endpoint and network, or raise ${TIMEOUT_ENV}"
            ) from None

    def _name(self, key: str, suffix: str) -> str:
        return f"{self.base.rstrip('/')}/{key[:2]}/{key}{suffix}"

    def url(self, key: str, suffix: str) -> str:
        """The full URL of one object, for messages."""
        return f"{self.root}/{key[:2]}/{key}{suffix}"

    def _failed(self, exc: Exception, doing: str, where: str) -> CacheError:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return CacheError(f"{doing} {where}: {why or type(exc).__name__}; {CACHE_HINT}")

    def probe(self) -> None:
        """Write and remove a small object, so a cache that cannot take entries fails first."""
        name = f"{self.base.rstrip('/')}/.probe-{uuid.uuid4().hex}"
        try:
            self._call("pipe_file", name, b"")
            self._call("rm_file", name)
        except CacheError:
            raise
        except Exception as exc:  # each store raises its own errors (PermissionError, ClientError)
            raise self._failed(exc, "cannot use the cache at", self.root) from None

    def read(self, key: str, suffix: str) -> bytes | None:
        """The object's bytes, or None when there is none."""
        try:
            blob: bytes = self._call("cat_file", self._name(key, suffix))
        except FileNotFoundError:
            return None
        return blob

    def write(self, key: str, suffix: str, blob: bytes) -> None:
        """Write the whole object under a temporary key, then move it to its own."""
        final = self._name(key, suffix)
        tmp = f"{final.rsplit('/', 1)[0]}/.tmp-{uuid.uuid4().hex}{suffix}"
        try:
            self._call("pipe_file", tmp, blob)
            self._call("mv_file", tmp, final)
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._call("rm_file", tmp)
            raise self._failed(exc, "cannot write the cache entry", self.url(key, suffix)) from None

    def put(self, key: str, source: Path) -> None:
        """Upload a local file as the object ``key`` + its suffix, through a temporary key."""
        final = self._name(key, source.suffix)
        tmp = f"{final.rsplit('/', 1)[0]}/.tmp-{uuid.uuid4().hex}{source.suffix}"
        try:
            self._call("put_file", str(source), tmp)
            self._call("mv_file", tmp, final)
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._call("rm_file", tmp)
            where = self.url(key, source.suffix)
            raise self._failed(exc, "cannot write the cache entry", where) from None

    def fetch(self, key: str, folder: Path) -> Path:
        """Download the objects beside ``key``'s entry into ``folder``; their local stem."""
        for name in self._call("glob", self._name(key, ".*")):
            suffix = "." + str(name).rsplit(".", 1)[1]
            if suffix != ".npz":
                self._call("get_file", name, str(folder / f"{key}{suffix}"))
        return folder / key

    def remove(self, key: str) -> None:
        """Remove the entry and the objects beside it; what cannot be removed is left."""
        with contextlib.suppress(Exception):
            for name in self._call("glob", self._name(key, ".*")):
                self._call("rm_file", name)


def _digest(arrays: Arrays) -> str:
    return fingerprint(*[part for name in sorted(arrays) for part in (name, arrays[name])])


def mismatch(arrays: Mapping[str, npt.NDArray[Any]], expect: Expect) -> str:
    """Why ``arrays`` do not match ``expect`` (see :meth:`ArrayCache.load`), or ``""``."""
    sizes: dict[str, int] = {}
    for name, (kinds, shape) in expect.items():
        if name not in arrays:
            return f"missing its array {name!r}"
        array = arrays[name]
        if array.dtype.kind not in kinds or array.ndim != len(shape):
            return f"holding {name!r} as {array.dtype}{list(array.shape)}"
        for want, got in zip(shape, array.shape, strict=True):
            if isinstance(want, str):
                want = sizes.setdefault(want, got)
            if want is not None and want != got:
                return f"holding {name!r} of shape {list(array.shape)}, not what this run needs"
    return ""


def as_array(value: Any) -> np.ndarray[Any, Any]:
    """A JSON document stored as a 0-d string array, so metadata sits in the same entry."""
    import numpy as np

    return np.array(json.dumps(value, sort_keys=True))


def from_array(array: npt.NDArray[Any]) -> Any:
    """The inverse of :func:`as_array`."""
    return json.loads(str(array))
