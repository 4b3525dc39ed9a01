"""Encoders named in the ecosystem's own terms, against models the tests build locally (no hub,
no network): a sentence-transformers folder, and timm and open_clip checkpoints beside the spec.

These need torch, which the plugin's CI install does not carry (gigabytes); they skip where
sentence-transformers, timm or open_clip is absent and run where a team installs them.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from pytest_labelquality.encoders import load_encoder
from pytest_labelquality.errors import ModelError
from pytest_labelquality.runner import check_dataset
from pytest_labelquality.spec import load_spec

if TYPE_CHECKING:
    from conftest import PhotoFolders

WORDS = [
    *("market", "stocks", "shares", "profit", "bank", "oil", "price", "deal", "company", "quarter"),
    *("game", "team", "season", "win", "coach", "match", "player", "league", "cup", "score"),
    *("space", "nasa", "software", "computer", "internet", "phone", "chip", "study", "web", "lab"),
    *("war", "minister", "troops", "election", "police", "talks", "peace", "vote", "city", "law"),
]


def tiny_sentence_transformer(folder: Path, seed: int) -> None:
    """A one-layer BERT of width 32 over a vocabulary of the words above, mean-pooled: a real
    sentence-transformers model, saved as a folder as the hub's would be."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    st = pytest.importorskip("sentence_transformers")
    bert_dir = folder.with_name(folder.name + "-bert")
    bert_dir.mkdir(parents=True)
    vocab = bert_dir / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(vocab))
    config = transformers.BertConfig(
        vocab_size=len(WORDS) + 5,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    transformers.BertModel(config).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    # a plain transformers folder loads as the model with mean pooling
    st.SentenceTransformer(str(bert_dir), device="cpu").save(str(folder))


def topic_texts(path: Path, per_class: int = 20) -> None:
    """Short texts of four topics, each drawn from its own ten words."""
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["label", "text"])
        for label in range(4):
            own = WORDS[label * 10 : label * 10 + 10]
            for _ in range(per_class):
                writer.writerow([f"topic{label}", " ".join(rng.choice(own, 8))])


def text_spec(root: Path, encoder: str) -> Path:
    path = root / "topics.labelquality.yaml"
    path.write_text(
        "datasets:\n  - name: topics\n"
        "    source: {format: text, path: topics.csv, text: text, label: label}\n"
        f"    model: {{name: encoder_linear, encoder: '{encoder}'}}\n"
        "    cv: {folds: 3}\n"
        "    gate: {max_noise_rate: 0.5}\n"
    )
    return path


def image_spec(root: Path, encoder: str) -> Path:
    """A spec of the photos under ``root/photos`` with ``encoder_linear`` on ``encoder``."""
    path = root / "photos.labelquality.yaml"
    path.write_text(
        "datasets:\n  - name: photos\n"
        "    source: {format: images, dir: photos}\n"
        f"    model: {{name: encoder_linear, encoder: '{encoder}'}}\n"
        "    cv: {folds: 2}\n"
        "    gate: {max_noise_rate: 1.0}\n"
    )
    return path


def run(spec_path: Path, cache: Path) -> tuple[Any, list[str]]:
    (spec,) = load_spec(spec_path)
    lines: list[str] = []
    return check_dataset(spec, cache_dir=cache, progress=lines.append), lines


def test_a_local_sentence_transformers_folder_is_an_encoder(tmp_path: Path) -> None:
    tiny_sentence_transformer(tmp_path / "tiny-st", seed=0)
    topic_texts(tmp_path / "topics.csv")
    spec_path = text_spec(tmp_path, "sentence-transformers:tiny-st")
    result, _ = run(spec_path, tmp_path / "cache")
    identity = result.model.encoder_identity
    assert identity is not None
    assert identity["encoder"] == "sentence-transformers:tiny-st"
    assert len(identity["weights_sha256"]) == 64
    assert result.cache.embeddings is not None
    assert (result.cache.embeddings.encoded, result.cache.embeddings.reused) == (80, 0)
    # the vectors are the library's own, normalised
    import sentence_transformers

    encoder = load_encoder("sentence-transformers:tiny-st", kind="text", base_dir=tmp_path)
    texts = np.array(["market stocks profit", "game team season"], dtype=object)
    own = sentence_transformers.SentenceTransformer(str(tmp_path / "tiny-st"), device="cpu")
    expected = own.encode(list(texts), normalize_embeddings=True)
    np.testing.assert_allclose(encoder.encode(texts), expected, rtol=1e-5, atol=1e-6)
    warm, warm_lines = run(spec_path, tmp_path / "cache")
    assert warm.cache.status == "hit"
    assert not any("encoded" in line for line in warm_lines)
    # new weights in the same folder are another encoder (the next run's process loads them):
    # their vectors do not come from the cache
    import shutil

    shutil.rmtree(tmp_path / "tiny-st")
    shutil.rmtree(tmp_path / "tiny-st-bert")
    tiny_sentence_transformer(tmp_path / "tiny-st", seed=1)
    retrained = load_encoder("sentence-transformers:tiny-st", kind="text", base_dir=tmp_path)
    assert retrained.identity()["weights_sha256"] != identity["weights_sha256"]
    assert not np.allclose(retrained.encode(texts), expected)


def test_timm_with_a_local_checkpoint_is_an_encoder(
    tmp_path: Path, photo_folders: PhotoFolders
) -> None:
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    pytest.importorskip("PIL")
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", pretrained=False)
    torch.save(model.state_dict(), tmp_path / "tiny.pth")
    photo_folders(tmp_path / "photos", per_class=8, moved=0)
    result, _ = run(image_spec(tmp_path, "timm:test_efficientnet@tiny.pth"), tmp_path / "cache")
    identity = result.model.encoder_identity
    assert identity is not None
    assert identity["encoder"] == "timm:test_efficientnet@tiny.pth"
    assert (
        identity["weights_sha256"]
        == __import__("hashlib").sha256((tmp_path / "tiny.pth").read_bytes()).hexdigest()
    )
    assert result.cache.embeddings is not None
    assert result.cache.embeddings.encoded == 24
    # the encoder's vectors are timm's pooled features of its own transform
    encoder = load_encoder("timm:test_efficientnet@tiny.pth", kind="image", base_dir=tmp_path)
    image = np.full((1, 32, 32, 3), 128, np.uint8)
    vectors = encoder.encode(image)
    assert vectors.shape == (1, model.num_features)
    with pytest.raises(ModelError, match=r"timm:test_efficientnet@absent.pth: no checkpoint"):
        load_encoder("timm:test_efficientnet@absent.pth", kind="image", base_dir=tmp_path)


TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
}


def test_open_clip_with_a_local_checkpoint_encodes_photos_and_texts(
    tmp_path: Path, photo_folders: PhotoFolders
) -> None:
    """A CLIP of one layer each side, registered as an open_clip model config and saved as a
    checkpoint beside the spec: ``open_clip:ARCH/FILE`` embeds photos and texts through
    open_clip's own preprocessing and tokenizer, normalised."""
    import json

    torch = pytest.importorskip("torch")
    open_clip = pytest.importorskip("open_clip")
    pytest.importorskip("PIL")
    config = tmp_path / "configs" / "tiny-clip.json"
    config.parent.mkdir()
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip")
    torch.save(model.state_dict(), tmp_path / "tiny-clip.pt")
    photo_folders(tmp_path / "photos", per_class=8, moved=0)
    result, _ = run(image_spec(tmp_path, "open_clip:tiny-clip/tiny-clip.pt"), tmp_path / "cache")
    identity = result.model.encoder_identity
    assert identity is not None
    assert identity["encoder"] == "open_clip:tiny-clip/tiny-clip.pt"
    assert result.cache.embeddings is not None
    assert result.cache.embeddings.encoded == 24
    images = load_encoder("open_clip:tiny-clip/tiny-clip.pt", kind="image", base_dir=tmp_path)
    texts = load_encoder("open_clip:tiny-clip/tiny-clip.pt", kind="text", base_dir=tmp_path)
    photo = np.full((1, 32, 32, 3), 128, np.uint8)
    words = np.array(["a photo of a cat", "a photo of a ship"], dtype=object)
    image_vectors, text_vectors = images.encode(photo), texts.encode(words)
    assert image_vectors.shape == (1, 32)
    assert text_vectors.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(text_vectors, axis=1), 1.0, rtol=1e-5)
    model.eval()
    tokens = open_clip.get_tokenizer("tiny-clip")(list(words))
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1).numpy()
    np.testing.assert_allclose(text_vectors, expected, rtol=1e-4, atol=1e-5)
