"""``format: images``: a folder of image files, labelled by sub-folder or by a table.

Files are decoded with Pillow (EXIF orientation applied, the first frame of a GIF), converted to
RGB (or grey, when every file is grey) and brought to one working size. Decoded pixels are
cached by the files' content: a warm run reads one cache entry, and a changed folder decodes
only the files whose bytes it has never seen (a file moved to another class folder is the same
content with another label). Cold decoding runs on a thread pool as wide as the cores.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import io
import os
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_labelquality.errors import DataError
from pytest_labelquality.formats import SourceFormat, check_path, need
from pytest_labelquality.formats.readers import CsvOptions, label_texts, read_table
from pytest_labelquality.source_specs import Flips, field_doc

if TYPE_CHECKING:
    from pytest_labelquality.cache import CacheRoot
    from pytest_labelquality.dataset import Dataset
    from pytest_labelquality.spec import DatasetSpec

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"})
DEFAULT_LONGEST_SIDE = 64
THUMBNAIL_SIDE = 128
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
#: The longest side ``source.size`` may ask for: the working size of a label-quality check is
#: tens of pixels (the default is at most 64); thousands are a mistake that would fill memory.
MAX_WORKING_SIDE = 4096
#: An image is first brought down by a whole factor (JPEG: decoded at 1/2, 1/4 or 1/8 scale by
#: ``draft``; others: ``reduce``) to no less than this many times the size it is resampled to:
#: Pillow's advice for a result indistinguishable from resampling the full image.
REDUCING_GAP = 3.0
#: The most bytes one file may take decoded at full size (after JPEG's draft scaling), with the
#: copy its mode conversion needs (Pillow keeps RGB in four bytes a pixel): a 13,000 x 13,000
#: RGB PNG (0.6 GiB) is decoded, an RGBA one (1.3 GiB with its premultiplied copy) is refused
#: naming the file. (Pillow itself refuses images over 179 million pixels.)
MAX_DECODE_BYTES = 1 << 30
#: Bytes that the decoding threads together may hold in full-size images: a large file waits for
#: others to finish (one over it decodes alone). Files under SMALL_DECODE_BYTES do not count, so
#: that a folder of photos decodes as wide as the cores (a 24-megapixel JPEG is drafted to 1/8,
#: 1 MiB; seven 24-megapixel PNGs, 72 MiB each, decode at once).
DECODE_POOL_BYTES = 512 << 20
SMALL_DECODE_BYTES = 32 << 20


class Aspect(enum.StrEnum):
    """How an image of another shape is brought to the working size."""

    PAD = "pad"
    CROP = "crop"
    STRETCH = "stretch"


class ColorMode(enum.StrEnum):
    """The working colour mode: ``auto`` is grey when every image is grey, else RGB."""

    AUTO = "auto"
    RGB = "rgb"
    GREY = "grey"


@dataclass(frozen=True, kw_only=True)
class ImageFolderSource(CsvOptions):
    """A folder of image files (PNG, JPEG, WebP, BMP, GIF): one sub-folder per class, or
    ``labels``, a table mapping each file's path to its label."""

    FORMAT: ClassVar[str] = "images"
    dir: str = field(metadata=field_doc("The folder, relative to the spec."))
    labels: str | None = field(
        default=None,
        metadata=field_doc("A CSV, JSONL or Parquet table of paths (relative to dir) and labels."),
    )
    path_column: str = field(default="path", metadata=field_doc("labels: the path column."))
    label_column: str = field(default="label", metadata=field_doc("labels: the label column."))
    id_column: str | None = field(
        default=None, metadata=field_doc("labels: an id column (default: the relative path).")
    )
    split_column: str | None = field(
        default=None, metadata=field_doc("labels: a column naming each image's split.")
    )
    split_folders: bool = field(
        default=False,
        metadata=field_doc(
            "Without labels: one folder per split (train, test...) above the class folders."
        ),
    )
    classes: tuple[str, ...] | None = field(
        default=None,
        metadata=field_doc("Class names (default: the labels found, sorted).", minItems=2),
    )
    size: tuple[int, ...] | None = field(
        default=None,
        metadata=field_doc(
            "Working size [height, width] (default: the first image's, at most 64)."
        ),
    )
    aspect: Aspect = field(default=Aspect.PAD, metadata=field_doc("pad, crop or stretch to size."))
    mode: ColorMode = field(default=ColorMode.AUTO, metadata=field_doc("auto, rgb or grey."))
    skip_unreadable: bool = field(
        default=False,
        metadata=field_doc("Skip undecodable files (listed in the report) instead of failing."),
    )
    outside: bool = field(
        default=False,
        metadata=field_doc(
            "Allow files outside dir: a labels table's absolute or ../ paths, symlinks out of"
            " the folder (off: a pull request cannot pull other files into the report)."
        ),
    )
    flip: Flips | None = field(default=None, metadata=field_doc("Inject synthetic label flips."))


@dataclass(frozen=True)
class _File:
    rel: str
    path: str
    label: str
    id: str
    stat: tuple[int, int]
    split: str = ""


def load(spec: DatasetSpec, src: ImageFolderSource, cache_dir: CacheRoot | None) -> Dataset:
    """List, decode (or read from the cache) and label the images."""
    import numpy as np

    from pytest_labelquality.dataset import DataKind, Dataset, encode_labels

    need("PIL.Image", "images")
    root = spec.resolve(src.dir)
    files, ignored = _listed(root, src) if src.labels is None else _tabled(spec, root, src)
    if not files:
        raise DataError(f"{root}: no image files ({ignored} other files ignored)")
    size = tuple(src.size) if src.size else _first_size(files[0].path)
    problem = _size_problem(size) or _pixels_problem(len(files), size)
    if problem:
        raise DataError(f"{spec.location}: source.size: {problem}")
    pixels, grey, digests, errors, decoded = _decoded(root, files, size, src, cache_dir)
    if errors and not src.skip_unreadable:
        first = next(iter(errors))
        more = f" ({len(errors) - 1} more unreadable files)" if len(errors) > 1 else ""
        raise DataError(
            f"{files[first].path}: cannot decode the image ({errors[first]}); fix or remove it,"
            f" or set source.skip_unreadable: true{more}"
        )
    skipped = [{"path": files[i].rel, "reason": reason} for i, reason in errors.items()]
    keep = np.array([i for i in range(len(files)) if i not in errors], dtype=np.int64)
    if not len(keep):
        raise DataError(f"{root}: none of the {len(files)} image files could be decoded")
    all_grey = bool(grey[keep].all())
    working_grey = src.mode is ColorMode.GREY or (src.mode is ColorMode.AUTO and all_grey)
    if not working_grey:
        features = pixels[keep]
        if features.shape[-1] == 1:  # the cache keeps one channel of grey images
            features = np.repeat(features, 3, axis=-1)
    elif all_grey:
        features = pixels[keep, :, :, 0]
    else:  # colour files in a grey working mode: their luminance
        weights = np.array([0.299, 0.587, 0.114], np.float32)
        features = (pixels[keep] @ weights).round().astype(np.uint8)
    kept = [files[i] for i in keep.tolist()]
    labels, names = encode_labels(
        np.array([f.label for f in kept], dtype=np.str_), src.classes, str(root)
    )
    return Dataset(
        features=features,
        labels=labels,
        ids=np.array([f.id for f in kept], dtype=np.str_),
        class_names=names,
        kind=DataKind.IMAGE,
        origin=str(root),
        flipped=np.empty(0, dtype=np.int64),
        files=tuple(f.path for f in kept),
        content=digests[keep],
        splits=tuple(f.split for f in kept) if src.split_folders or src.split_column else (),
        stats={
            "files": len(files),
            "decoded": decoded,
            "ignored": ignored,
            "skipped": skipped,
            "size": list(size),
            "mode": "grey" if working_grey else "rgb",
        },
    )


class _Boundary:
    """The dataset's folder as a boundary: a path is inside when it resolves, after symlinks,
    to the folder or below it. Parent folders are resolved once each."""

    def __init__(self, root: Path, allowed: bool) -> None:
        self.root = os.path.realpath(root)
        self.allowed = allowed
        self._parents: dict[str, bool] = {}

    def _holds(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)

    def inside(self, path: str, *, link: bool | None = None) -> bool:
        """Whether ``path`` (a file or folder) resolves inside; ``link``: whether it is a
        symlink, when the caller knows (a listing does), else it is looked up."""
        if self.allowed:
            return True
        if link is None:
            link = os.path.islink(path)
        if link:
            return self._holds(os.path.realpath(path))
        parent = os.path.dirname(path)
        if parent not in self._parents:
            self._parents[parent] = self._holds(os.path.realpath(parent))
        return self._parents[parent]

    def refuse(self, where: str, what: str) -> DataError:
        return DataError(
            f"{where}: {what} is outside the dataset's folder {self.root}; keep the files in"
            " dir, or set source.outside: true if the spec should read files outside it"
        )


def _listed(root: Path, src: ImageFolderSource) -> tuple[list[_File], int]:
    """Layout A: one sub-folder per class (nested folders inside a class folder count too);
    with ``split_folders``, one sub-folder per split holding the class folders."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    boundary = _Boundary(root, src.outside)
    if not src.split_folders:
        return _class_folders(root, "", src, boundary)
    splits = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not splits:
        raise DataError(f"{root}: source.split_folders: no split folders (train, test...)")
    files: list[_File] = []
    ignored = sum(1 for e in os.scandir(root) if e.is_file())
    for split in splits:
        if not boundary.inside(str(root / split), link=True):
            raise boundary.refuse(str(root / split), f"the folder of split {split!r}")
        found, skipped = _class_folders(root / split, split, src, boundary)
        files += found
        ignored += skipped
    return files, ignored


def _class_folders(
    base: Path, split: str, src: ImageFolderSource, boundary: _Boundary
) -> tuple[list[_File], int]:
    """The images of the class folders under ``base`` (of ``split``, or of no split)."""
    files: list[_File] = []
    ignored = 0
    classes = src.classes or tuple(
        sorted(e.name for e in os.scandir(base) if e.is_dir() and not e.name.startswith("."))
    )
    ignored += sum(1 for e in os.scandir(base) if e.is_file())
    empty: list[tuple[Path, str]] = []
    for name in classes:
        folder = base / name
        if not folder.is_dir():
            if split:  # a split need not hold every class
                continue
            raise DataError(f"{folder}: no folder for class {name!r}")
        if not boundary.inside(str(folder), link=True):
            raise boundary.refuse(str(folder), f"the folder of class {name!r}")
        before = len(files)
        prefix = f"{split}/{name}" if split else name
        for rel, path, found in _walk(str(folder), prefix, boundary):
            if os.path.splitext(rel)[1].lower() not in IMAGE_EXTENSIONS:
                ignored += 1
                continue
            if not stat.S_ISREG(found.st_mode):  # reading a FIFO would wait forever
                raise DataError(f"{path}: {_NOT_A_FILE}")
            stats = (found.st_size, found.st_mtime_ns)
            files.append(_File(rel, path, name, rel, stats, split))
        if len(files) == before and not src.classes:
            empty.append((folder, name))
    if empty and files:  # with no image at all, load names the whole folder instead
        folder, name = empty[0]
        more = f" ({len(empty) - 1} more empty class folders)" if len(empty) > 1 else ""
        raise DataError(
            f"{folder}: the folder of class {name!r} holds no image files; add some, remove"
            f" the folder, or name the classes to check in source.classes{more}"
        )
    return files, ignored


_NOT_A_FILE = "not a regular file (a FIFO, socket or device); remove it from the folder"


def _walk(folder: str, rel: str, boundary: _Boundary) -> Iterator[tuple[str, str, os.stat_result]]:
    """Files below ``folder`` as (relative POSIX path, path, stat), sorted, hidden folders
    skipped (plain strings: pathlib costs more than the listing itself on 50,000 files). A
    symlink that leads out of the dataset's folder is an error naming it."""
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_symlink() and not boundary.inside(entry.path, link=True):
            raise boundary.refuse(entry.path, "the symlink's target")
        if entry.is_dir():
            if not entry.name.startswith("."):
                yield from _walk(entry.path, f"{rel}/{entry.name}", boundary)
        else:
            yield f"{rel}/{entry.name}", entry.path, entry.stat()


def _tabled(spec: DatasetSpec, root: Path, src: ImageFolderSource) -> tuple[list[_File], int]:
    """Layout B: a table of paths relative to ``dir`` and their labels."""
    assert src.labels is not None
    own = (src.id_column, src.split_column)
    wanted = [src.path_column, src.label_column, *(c for c in own if c)]
    table = read_table(spec.resolve(src.labels), wanted, src)
    boundary = _Boundary(root, src.outside)
    files: list[_File] = []
    seen: dict[str, str] = {}
    labels = label_texts(table, src.label_column)
    splits = label_texts(table, src.split_column) if src.split_column else None
    for row in range(len(table.rows)):
        raw = table.columns[src.path_column][row]
        label = labels[row]
        if not raw:
            raise DataError(f"{table.where(row)}: empty {src.path_column!r}")
        rel = PurePosixPath(str(raw).replace("\\", "/")).as_posix().removeprefix("./")
        if rel in seen:
            raise DataError(f"{table.where(row)}: duplicate path {rel!r} (also at {seen[rel]})")
        seen[rel] = table.rows[row]
        path = root / rel
        lexical = PurePosixPath(rel)
        if not src.outside and (lexical.is_absolute() or ".." in lexical.parts):
            raise boundary.refuse(table.where(row), repr(rel))
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(
                f"{table.where(row)}: {rel!r} is not an image file"
                f" ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        if "\0" in rel:
            raise DataError(f"{table.where(row)}: {rel!r} holds a NUL character; no file has one")
        try:
            found = path.stat()
        except FileNotFoundError:
            raise DataError(f"{table.where(row)}: no file {path}") from None
        except OSError as exc:  # a name too long, a file as a folder, a symlink loop
            raise DataError(f"{table.where(row)}: cannot read {rel!r}: {exc.strerror}") from None
        if not boundary.inside(str(path)):
            raise boundary.refuse(table.where(row), f"{rel!r} (through a symlink)")
        if stat.S_ISDIR(found.st_mode):
            raise DataError(f"{table.where(row)}: {rel!r} is a folder, not an image file")
        if not stat.S_ISREG(found.st_mode):
            raise DataError(f"{table.where(row)}: {rel!r}: {_NOT_A_FILE}")
        ident = str(table.columns[src.id_column][row]) if src.id_column else rel
        stats = (found.st_size, found.st_mtime_ns)
        split = splits[row] if splits else ""
        files.append(_File(rel, str(path), str(label), ident, stats, split))
    return files, 0


def _first_size(path: str) -> tuple[int, int]:
    """The default working size: the first image's, scaled to at most 64 on its longer side."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception:  # an unreadable first file is reported by decoding
        return (DEFAULT_LONGEST_SIDE, DEFAULT_LONGEST_SIDE)
    scale = min(1.0, DEFAULT_LONGEST_SIDE / max(width, height))
    return (max(1, round(height * scale)), max(1, round(width * scale)))


def _opaque(image: Any) -> Any:
    """An image with transparency composited on white, the page a drawing is made on (without
    it, strokes on a transparent background decode as black on black); others as they are."""
    from PIL import Image

    if not _transparent(image):
        return image
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)


class DecodeBudget:
    """Bytes of full-size images that threads decode at once, at most ``capacity`` (a request
    larger than it waits until nothing else is held, then goes alone)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Hold ``size`` bytes while the block runs; small requests pass at once."""
        if size < SMALL_DECODE_BYTES:
            yield
            return
        with self._changed:
            self._changed.wait_for(lambda: not self.held or self.held + size <= self.capacity)
            self.held += size
        try:
            yield
        finally:
            _return_freed_memory()
            with self._changed:
                self.held -= size
                self._changed.notify_all()


DECODING = DecodeBudget(DECODE_POOL_BYTES)


@functools.cache
def _malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none (macOS, musl)."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return lambda: trim(0)


def _return_freed_memory() -> None:
    """Give the memory a large image was decoded in back to the system. glibc keeps what a
    thread frees for that thread's next allocations: four threads that each decoded one
    13,000 x 13,000 PNG in turn held four images' memory (2 GB) instead of one's."""
    trim = _malloc_trim()
    if trim is not None:
        trim()


#: Bytes per pixel of Pillow's modes in memory: one for 1, L and P, two for 16-bit grey, and four
#: for every other mode (Pillow keeps RGB and LA in 32 bits).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
_ORIENTATION = 0x0112  # the EXIF tag
_SWAPS_AXES = frozenset({5, 6, 7, 8})


def _mode_bytes(mode: str) -> int:
    return _MODE_BYTES.get(mode, 4)


def _transparent(image: Any) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        "transparency" in image.info and image.mode in ("P", "L", "RGB")
    )


def _reduction(shown: tuple[int, int], size: tuple[int, ...], aspect: Aspect) -> int:
    """The whole factor an image of ``shown`` (width, height, after its EXIF rotation) may be
    brought down by and stay at least :data:`REDUCING_GAP` times what ``aspect`` brings it to
    at ``size`` (height, width)."""
    scales = (size[1] / shown[0], size[0] / shown[1])
    scale = min(scales) if aspect is Aspect.PAD else max(scales)  # stretch: the finer axis
    return max(1, int(1 / (scale * REDUCING_GAP)))


def _reducible(image: Any) -> Any:
    """``image`` in a mode that ``reduce`` averages rightly: palettes and transparency keys to
    RGB(A), bits to grey, 16-bit grey to 32-bit (RGBA and LA are premultiplied by reduce)."""
    if _transparent(image) and image.mode in ("P", "PA", "L", "RGB"):
        return image.convert("RGBA")
    conversions = {"1": "L", "P": "RGB", "I;16": "I", "I;16B": "I", "I;16L": "I", "I;16N": "I"}
    return image.convert(conversions[image.mode]) if image.mode in conversions else image


def _full_size_bytes(image: Any, reduce: bool) -> int:
    """What decoding ``image`` at its (draft) size takes, with the copy its conversion needs:
    to a reducible mode (and RGBA's premultiplied copy) when it is reduced, else to RGBA and
    RGB as :func:`_decode` converts it."""
    mode: str = image.mode
    if not reduce:
        extra = 8
    elif _transparent(image):
        extra = 8 if mode in ("P", "PA", "L", "RGB") else 4 if mode in ("RGBA", "LA") else 0
    else:
        extra = {"1": 1, "P": 4}.get(mode, 4 if mode.startswith("I;16") else 0)
    width, height = image.size
    return int(width * height * (_mode_bytes(mode) + extra))


def _bytes(size: float) -> str:
    """A size for a message: '1.3 GiB', '48 MiB'."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


class ImageTooLarge(ValueError):
    """An image whose full-size decode would take more memory than one file may."""


def _loaded(opened: Any, size: tuple[int, ...], aspect: Aspect) -> Any:
    """The image of an opened file, decoded and brought down by a whole factor towards
    :data:`REDUCING_GAP` times what it is resampled to at ``size`` (JPEG: decoded at 1/2, 1/4
    or 1/8 scale, without the full-size pixels), its EXIF orientation applied. Raises
    :class:`ImageTooLarge` before decoding a file whose full-size pixels exceed
    :data:`MAX_DECODE_BYTES`; holds the bytes in :data:`DECODING` while they exist."""
    from PIL import Image

    def shown(orientation: int) -> tuple[int, int]:
        width, height = opened.size
        return (height, width) if orientation in _SWAPS_AXES else (width, height)

    # a JPEG's orientation comes before its pixels; a PNG's getexif decodes the whole image
    jpeg = opened.format in ("JPEG", "MPO")
    orientation = opened.getexif().get(_ORIENTATION, 1) if jpeg else 1
    factor = _reduction(shown(orientation), size, aspect)
    if factor > 1:  # JPEG decodes at a smaller scale (other formats ignore the request)
        opened.draft(None, (-(-opened.size[0] // factor), -(-opened.size[1] // factor)))
        factor = _reduction(shown(orientation), size, aspect)
    needed = _full_size_bytes(opened, factor > 1)
    if needed > MAX_DECODE_BYTES:
        width, height = opened.size
        raise ImageTooLarge(
            f"decoding its {width} x {height} pixels ({opened.mode}) takes {_bytes(needed)},"
            f" over the {_bytes(MAX_DECODE_BYTES)} one file may take; save it smaller"
        )
    with DECODING.hold(needed):
        opened.load()
        orientation = opened.getexif().get(_ORIENTATION, 1)
        factor = _reduction(shown(orientation), size, aspect)
        image = _reducible(opened).reduce(factor) if factor > 1 else opened
        method = {
            2: Image.Transpose.FLIP_LEFT_RIGHT,
            3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270,
            7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90,
        }.get(orientation)  # as ImageOps.exif_transpose undoes each orientation
        if method is not None:
            image = image.transpose(method)
        if image is not opened:
            opened.close()  # frees the full-size pixels now, not when the file is closed
        return image


def _decode(data: bytes, size: tuple[int, ...], aspect: Aspect) -> tuple[Any, bool]:
    """One file's bytes as ``(height, width, 3)`` uint8 RGB at the working size, and whether
    the image is grey (its three channels equal, whatever the file's mode)."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as opened:
        image = _opaque(_loaded(opened, size, aspect))
        if image.mode in ("I", "I;16", "F"):
            image = image.point(lambda v: v / 256) if image.mode != "F" else image
            image = image.convert("L")
        rgb = image.convert("RGB")
    target = (size[1], size[0])
    if aspect is Aspect.PAD:
        fitted = ImageOps.pad(rgb, target, color=(0, 0, 0))
    elif aspect is Aspect.CROP:
        fitted = ImageOps.fit(rgb, target)
    else:
        fitted = rgb.resize(target, Image.Resampling.BILINEAR)
    pixels = np.asarray(fitted, dtype=np.uint8)
    grey = bool(
        (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    )
    return pixels, grey


class FileImages:
    """Image files decoded on demand for an encoder with its own resolution, instead of the
    working-size pixels (a photo brought down to 64 pixels would lose the detail the encoder
    is for): each centre-cropped to a square and brought down to the resolution if larger
    (smaller ones stay as they are; the encoder's graph resizes them, which measured better on
    32-pixel photos than Pillow's upscaling: 0.794 against 0.778). Rows come back as a list of
    arrays, one per file."""

    def __init__(self, paths: tuple[str, ...], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: Any) -> list[Any]:
        from PIL import Image

        out = []
        for i in index:
            with open(self.paths[int(i)], "rb") as handle, Image.open(handle) as image:
                side = min(self.size, *image.size)
            with open(self.paths[int(i)], "rb") as handle:
                out.append(_decode(handle.read(), (side, side), Aspect.CROP)[0])
        return out


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _decoded(
    root: Path,
    files: list[_File],
    size: tuple[int, ...],
    src: ImageFolderSource,
    cache_dir: CacheRoot | None,
) -> tuple[Any, Any, Any, dict[int, str], int]:
    """Pixels, grey flags, content digests and decoding errors of ``files``, and how many
    files were decoded: from the cache where the listing is unchanged, else reusing every
    known file content's pixels and decoding the rest in parallel."""
    import numpy as np

    from pytest_labelquality.cache import ArrayCache, as_array, from_array
    from pytest_labelquality.cache_keys import images_key, images_lineage_key
    from pytest_labelquality.resources import cores

    settings = [list(size), src.aspect.value]
    stats = [[f.rel, *f.stat] for f in files]
    cache = ArrayCache(cache_dir) if cache_dir is not None else None
    key = images_key(root, stats, settings)
    # the latest entry of this folder as this source lists it (its classes, its labels table)
    lineage = images_lineage_key(root, settings, repr(src))
    known: dict[str, int] = {}  # content digest -> row of the previous entry
    by_stat: dict[tuple[str, int, int], str] = {}
    previous: dict[str, Any] | None = None
    pointer: dict[str, Any] | None = None
    if cache is not None:
        entry = cache.load(key)
        if entry is not None:
            return (
                entry["pixels"],
                entry["grey"],
                entry["digests"],
                {int(k): v for k, v in from_array(entry["errors"]).items()},
                0,
            )
        pointer = cache.load(lineage)
        previous = cache.load(str(pointer["key"])) if pointer is not None else None
        if previous is not None:
            rows = from_array(previous["stats"])
            pairs = zip(rows, previous["digests"].tolist(), strict=True)
            for row, (stat, digest) in enumerate(pairs):
                by_stat[(stat[0], stat[1], stat[2])] = digest
                known.setdefault(digest, row)
    n = len(files)
    pixels = np.zeros((n, size[0], size[1], 3), dtype=np.uint8)
    grey = np.zeros(n, dtype=bool)
    digests = np.empty(n, dtype="<U16")
    errors: dict[int, str] = {}

    def work(i: int) -> bool:
        """Fill row ``i``; whether it was decoded."""
        f = files[i]
        digest = by_stat.get((f.rel, *f.stat))
        data = b""
        if digest is None:
            with open(f.path, "rb") as handle:
                data = handle.read()
            digest = _digest(data)
        digests[i] = digest
        row = known.get(digest)
        if previous is not None and row is not None and not previous["failed"][row]:
            pixels[i] = previous["pixels"][row]
            grey[i] = previous["grey"][row]
            return False
        try:
            if not data:
                with open(f.path, "rb") as handle:
                    data = handle.read()
            pixels[i], grey[i] = _decode(data, size, src.aspect)
        except Exception as exc:  # any decoder failure is reported with its file
            errors[i] = str(exc) or type(exc).__name__
        return True

    with ThreadPoolExecutor(max_workers=cores(spinning=False)) as pool:
        decoded = sum(pool.map(work, range(n), chunksize=64))
    errors = dict(sorted(errors.items()))
    if cache is not None:
        failed = np.zeros(n, dtype=bool)
        failed[list(errors)] = True
        cache.save(
            key,
            {
                "pixels": pixels[..., :1] if grey.all() else pixels,  # grey: one channel
                "grey": grey,
                "digests": digests,
                "failed": failed,
                "errors": as_array({str(k): v for k, v in errors.items()}),
                "stats": as_array(stats),
            },
        )
        cache.save(lineage, {"key": np.array(key)})
        if (
            pointer is not None and str(pointer["key"]) != key
        ):  # one entry per folder, not per change
            cache.discard(str(pointer["key"]), "superseded by the folder's current listing")
    return pixels, grey, digests, errors, decoded


def thumbnail(path: str) -> str | None:
    """A PNG data URI of the original file, at most 128 pixels on its longer side."""
    import base64

    try:
        from PIL import Image

        with Image.open(path) as opened:
            image = _opaque(_loaded(opened, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), Aspect.PAD))
            image = image.convert("RGB" if image.mode not in GREY_MODES else "L")
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            out = io.BytesIO()
            image.save(out, format="PNG", optimize=True)
    except Exception:  # the working-size pixels are shown instead
        return None
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _size_problem(size: tuple[int, ...]) -> str:
    """What is wrong with a working size, or ''."""
    if len(size) != 2 or min(size) < 1:
        return f"must be [height, width], got {list(size)}"
    if max(size) > MAX_WORKING_SIDE:
        return (
            f"{list(size)} asks for a side over {MAX_WORKING_SIDE} pixels; lower it (the"
            f" default, the images' own size brought to at most {DEFAULT_LONGEST_SIDE} a side,"
            " suits a label check)"
        )
    return ""


#: The share of the machine's memory that a folder's pixels at the working size may take: the
#: models then copy them (features, float32 batches), so half of it would already be too much.
PIXELS_SHARE = 0.25


def _pixels_problem(items: int, size: tuple[int, ...]) -> str:
    """Why ``items`` images at the working ``size`` (RGB) do not fit in memory, or ''."""
    from pytest_labelquality.resources import memory_bytes

    memory = memory_bytes()
    needed = items * size[0] * size[1] * 3
    if memory is None or needed <= memory * PIXELS_SHARE:
        return ""
    return (
        f"{items} images at {size[0]} x {size[1]} take {_bytes(needed)} as pixels, over the"
        f" {_bytes(memory * PIXELS_SHARE)} they may take (a quarter of this machine's"
        f" {_bytes(memory)}); lower source.size"
    )


def _check(spec: DatasetSpec, src: ImageFolderSource) -> tuple[str, str] | None:
    problem = _size_problem(src.size) if src.size is not None else ""
    if src.labels and src.split_folders:
        return ("split_folders", "the labels table names the splits: use split_column")
    return (
        ("size", problem)
        if problem
        else check_path(spec, src.dir, "dir", folder=True)
        or (check_path(spec, src.labels, "labels") if src.labels else None)
    )


SOURCE = SourceFormat(ImageFolderSource, load, _check, extras=("images",))
