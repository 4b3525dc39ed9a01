"""What every encoder is: a frozen feature extractor that turns items into fixed-size vectors.

An encoder runs once per item (its vectors are cached by :mod:`pytest_labelquality.embeddings`);
a light head is then trained on the vectors in each fold. Images reach :meth:`Encoder.encode` as
``uint8`` arrays of shape ``(n, H, W)`` (grey) or ``(n, H, W, 3)`` (RGB); texts as an object
array of ``str``.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Kind = Literal["image", "text"]
Progress = Callable[[str], None]


class Encoder(ABC):
    """A frozen encoder. ``identity`` names everything that changes its vectors (weights'
    sha256, preprocessing version) and nothing that does not (the device, the batch size)."""

    #: ``image`` or ``text``: what :meth:`encode` takes.
    kind: Kind
    #: Length of one vector.
    dim: int
    #: Images only: the square size it reads, decoded from the original files where there are
    #: files (an image folder); None where it takes the working-size pixels.
    resolution: int | None = None

    @abstractmethod
    def identity(self) -> dict[str, str]:
        """The parts of the embedding cache key that this encoder contributes."""

    @abstractmethod
    def encode(
        self, items: npt.NDArray[Any], *, progress: Progress | None = None
    ) -> npt.NDArray[np.float32]:
        """One ``float32`` row of length :attr:`dim` per item."""


def file_sha256(path: str | Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def onnx_session(model: str | Path | bytes, *, threads: int, arena: bool = True) -> Any:
    """An onnxruntime session on the GPU when onnxruntime has a CUDA provider that loads,
    else on ``threads`` CPU threads. ``LABEL_QUALITY_DEVICE=cpu`` keeps it on the CPU.

    ``arena=False`` for inputs of ever other shapes (texts of other lengths), whose memory
    arena grows and never shrinks: AG News peaked at 3.2 GB with it, 1.6 GB without; images of
    one size keep it (5,000 photos encoded in 105 s with it, 137 s without)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = arena
    providers = ["CPUExecutionProvider"]
    wants_gpu = os.environ.get("LABEL_QUALITY_DEVICE", "auto").lower() != "cpu"
    if wants_gpu and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=providers)
