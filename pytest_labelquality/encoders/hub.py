"""Encoders named in the ecosystem's own terms. These load through their own libraries (and so
from a hub, where the machine reaches one, or from a local folder or file): sentence-transformers
and open_clip for texts, timm and open_clip for images, and a local ONNX file.

A local folder or checkpoint is found relative to the spec, and the sha256 of its files is part
of the encoder's identity (so new weights miss the embedding cache); a hub name's identity is the
name and the library's version.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_labelquality.encoders.base import Encoder, Kind, Progress, file_sha256, onnx_session
from pytest_labelquality.errors import ModelError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

BATCH = 64


def _library(module: str, dist: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] not in (module, "torch", "torchvision"):
            raise
        raise ModelError(
            f"encoder {dist}:NAME needs {dist} (and torch), which is not installed:"
            f" pip install {dist}"
        ) from None


def _version(dist: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(dist)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _rgb_pil(items: npt.NDArray[Any]) -> list[Any]:
    from PIL import Image

    return [Image.fromarray(item).convert("RGB") for item in items]


def local(name: str, base_dir: Path) -> Path | None:
    """``name`` as a folder or file relative to the spec (or absolute), or None (a hub name)."""
    path = base_dir / name
    return path if path.exists() else None


def contents_sha256(path: Path) -> str:
    """The sha256 of a file, or of a folder's files (their relative names and contents)."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\0".encode())
    return digest.hexdigest()


class _TorchEncoder(Encoder):
    """An encoder whose vectors come from a torch model, in batches of :data:`BATCH`."""

    def __init__(
        self,
        kind: Kind,
        name: str,
        dist: str,
        model: Any,
        embed: Any,
        weights: Path | None = None,
    ) -> None:
        self.kind, self.name, self.dist = kind, name, dist
        self.model, self.embed = model, embed
        self.weights_sha256 = contents_sha256(weights) if weights is not None else None
        self.dim = 0

    def identity(self) -> dict[str, str]:
        """The name as written, the library's version and, for local weights, their sha256."""
        out = {"encoder": self.name, self.dist: _version(self.dist)}
        if self.weights_sha256:
            out["weights_sha256"] = self.weights_sha256
        return out

    def encode(
        self, items: npt.NDArray[Any], *, progress: Progress | None = None
    ) -> npt.NDArray[np.float32]:
        """Vectors of ``items`` through the library, without gradients."""
        import numpy as np
        import torch

        parts = []
        with torch.no_grad():
            for start in range(0, len(items), BATCH):
                parts.append(np.asarray(self.embed(items[start : start + BATCH]), np.float32))
                if progress is not None:
                    progress(f"  encoded {min(start + BATCH, len(items))} of {len(items)}")
        out = np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
        self.dim = int(out.shape[1]) if out.ndim == 2 else self.dim
        return out


def sentence_transformers_encoder(name: str, kind: Kind, base_dir: Path) -> Encoder:
    """``sentence-transformers:NAME``: a hub name or a local folder; normalised embeddings."""
    if kind != "text":
        raise ModelError(f"encoder sentence-transformers:{name} encodes texts, not {kind}s")
    library = _library("sentence_transformers", "sentence-transformers")
    folder = local(name, base_dir)
    model = library.SentenceTransformer(str(folder or name), device=_device())

    def embed(texts: npt.NDArray[Any]) -> Any:
        return model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)

    return _TorchEncoder(
        kind, f"sentence-transformers:{name}", "sentence-transformers", model, embed, folder
    )


def timm_encoder(name: str, kind: Kind, base_dir: Path) -> Encoder:
    """``timm:NAME``: the pooled features of a pretrained timm model, with its own transform;
    ``timm:ARCH@FILE`` takes the weights from a local checkpoint instead of the hub."""
    if kind != "image":
        raise ModelError(f"encoder timm:{name} encodes images, not {kind}s")
    timm = _library("timm", "timm")
    import torch

    device = _device()
    arch, _, file = name.partition("@")
    checkpoint = local(file, base_dir) if file else None
    if file and checkpoint is None:
        raise ModelError(f"encoder timm:{name}: no checkpoint {file} beside the spec")
    overlay = {"pretrained_cfg_overlay": {"file": str(checkpoint)}} if checkpoint else {}
    try:
        model = timm.create_model(arch, pretrained=True, num_classes=0, **overlay)
    except RuntimeError as exc:  # a checkpoint of another architecture
        raise ModelError(f"encoder timm:{name}: {str(exc).splitlines()[0]}") from None
    model = model.eval().to(device)
    config = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**config)

    def embed(images: npt.NDArray[Any]) -> Any:
        batch = torch.stack([transform(image) for image in _rgb_pil(images)]).to(device)
        return model(batch).cpu().numpy()

    return _TorchEncoder(kind, f"timm:{name}", "timm", model, embed, checkpoint)


def open_clip_encoder(name: str, kind: Kind, base_dir: Path) -> Encoder:
    """``open_clip:ARCH/PRETRAINED``: CLIP's normalised image or text embeddings; PRETRAINED
    is a tag of open_clip's or a local checkpoint."""
    open_clip = _library("open_clip", "open_clip_torch")
    import torch

    arch, _, pretrained = name.partition("/")
    checkpoint = local(pretrained, base_dir) if pretrained else None
    device = _device()
    model, _, preprocess = open_clip.create_model_and_transforms(
        arch, pretrained=str(checkpoint or pretrained) if pretrained else None
    )
    model = model.eval().to(device)
    tokenize = open_clip.get_tokenizer(arch)

    def embed(items: npt.NDArray[Any]) -> Any:
        if kind == "image":
            batch = torch.stack([preprocess(image) for image in _rgb_pil(items)]).to(device)
            vectors = model.encode_image(batch)
        else:
            vectors = model.encode_text(tokenize([str(t) for t in items]).to(device))
        return torch.nn.functional.normalize(vectors.float(), dim=-1).cpu().numpy()

    return _TorchEncoder(kind, f"open_clip:{name}", "open_clip_torch", model, embed, checkpoint)


HUB_LOADERS: dict[str, Callable[[str, Kind, Path], Encoder]] = {
    "sentence-transformers": sentence_transformers_encoder,
    "timm": timm_encoder,
    "open_clip": open_clip_encoder,
}


class OnnxImageEncoder(Encoder):
    """A local ONNX image model that takes ``uint8`` RGB images (``N x H x W x 3``, any size:
    its preprocessing is in the graph) and returns one vector per image as its first output."""

    kind = "image"

    def __init__(self, path: Path, *, batch_size: int = 32) -> None:
        from pytest_labelquality.resources import cores

        self.path = path
        self.batch_size = batch_size
        self.session = onnx_session(path, threads=cores(spinning=False))
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(uint8)":
            raise ModelError(
                f"encoder onnx:{path}: an image model needs one uint8 input (N x H x W x 3)"
            )
        self.input = inputs[0].name
        shape = self.session.get_outputs()[0].shape
        self.dim = int(shape[-1]) if isinstance(shape[-1], int) else 0

    def identity(self) -> dict[str, str]:
        """The file's sha256."""
        return {"encoder": "onnx", "sha256": file_sha256(self.path)}

    def encode(
        self, items: npt.NDArray[Any], *, progress: Progress | None = None
    ) -> npt.NDArray[np.float32]:
        """The model's first output for each image; grey images get three equal channels."""
        import numpy as np

        parts = []
        for start in range(0, len(items), self.batch_size):
            batch = np.asarray(items[start : start + self.batch_size], np.uint8)
            if batch.ndim == 3 or batch.shape[-1] == 1:
                batch = np.repeat(batch.reshape(*batch.shape[:3], 1), 3, axis=3)
            out = self.session.run(None, {self.input: np.ascontiguousarray(batch)})[0]
            parts.append(np.asarray(out, np.float32).reshape(len(batch), -1))
            if progress is not None:
                progress(f"  encoded {start + len(batch)} of {len(items)} images")
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)


def onnx_encoder(path: Path, *, kind: Kind, tokenizer: str | None, base_dir: Path) -> Encoder:
    """``onnx:PATH``: a local ONNX file; a text model also needs ``model.tokenizer``."""
    if not path.is_file():
        raise ModelError(f"encoder onnx:{path}: no such file")
    if kind == "image":
        return OnnxImageEncoder(path)
    if tokenizer is None:
        raise ModelError(f"encoder onnx:{path} on texts needs model.tokenizer (a tokenizer.json)")
    from pytest_labelquality.encoders.text import onnx_text_encoder

    return onnx_text_encoder(path, base_dir / tokenizer)
