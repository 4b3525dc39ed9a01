"""Image folders, texts and feature tables as people keep them: every layout, format and bad
input, loaded for real (Pillow, pyarrow, the CSV and JSON readers)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pytest_labelquality.dataset import DataKind
from pytest_labelquality.errors import DataError
from pytest_labelquality.models import encoders_installed
from pytest_labelquality.sources import check_folds, load_dataset
from pytest_labelquality.spec import DatasetSpec, load_spec

COLOURS = {"red": (200, 30, 30), "blue": (30, 30, 200)}


def spec_for(folder: Path, source: str) -> DatasetSpec:
    path = folder / "d.labelquality.yaml"
    path.write_text(
        f"datasets:\n  - name: d\n    source: {source}\n    gate: {{max_noise_rate: 1}}\n"
    )
    return load_spec(path)[0]


def picture(colour: tuple[int, int, int], size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.array(colour, dtype=np.int16) + rng.integers(-20, 20, (size[1], size[0], 3))
    return Image.fromarray(base.clip(0, 255).astype(np.uint8))


def image_folder(root: Path, per_class: int = 6) -> Path:
    """Two classes in the five formats, mixed sizes and modes, with a nested folder and files
    that are not images."""
    formats = ["png", "jpg", "webp", "bmp", "gif", "png"]
    for name, colour in COLOURS.items():
        for i in range(per_class):
            ext = formats[i % len(formats)]
            folder = root / name / ("nested" if i == per_class - 1 else "")
            folder.mkdir(parents=True, exist_ok=True)
            image = picture(colour, (16 + 4 * (i % 3), 16), seed=i)
            if i == 2:
                image = image.convert("L")
            image.save(folder / f"{i:03d}.{ext}")
    (root / "README.md").write_text("not an image")
    (root / "red" / ".DS_Store").write_bytes(b"\x00\x01")
    return root


def test_image_folder_layout_a(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "imgs")
    data = load_dataset(spec_for(tmp_path, "{format: images, dir: imgs}"), cache_dir=tmp_path / "c")
    assert data.kind is DataKind.IMAGE
    assert data.class_names == ("blue", "red")
    assert data.features.dtype == np.uint8
    assert data.features.shape == (12, 16, 16, 3)  # the first file's size, colour kept
    assert "red/nested/005.png" in data.ids.tolist()
    assert data.stats["ignored"] == 2
    assert data.stats["decoded"] == 12
    red = data.features[data.ids.tolist().index("red/001.jpg")].reshape(-1, 3).mean(axis=0)
    assert red[0] > 150 > 60 > red[2]
    assert data.files[0] == str(root / data.ids[0])
    check_folds(data, 5)
    with pytest.raises(DataError, match="class 'blue' has 6"):
        check_folds(data, 7)


def test_warm_load_decodes_nothing_and_a_moved_file_keeps_its_content(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "imgs")
    spec = spec_for(tmp_path, "{format: images, dir: imgs, size: [12, 12], aspect: crop}")
    cold = load_dataset(spec, cache_dir=tmp_path / "c")
    warm = load_dataset(spec, cache_dir=tmp_path / "c")
    assert (cold.stats["decoded"], warm.stats["decoded"]) == (12, 0)
    np.testing.assert_array_equal(cold.features, warm.features)
    shutil.move(root / "red" / "001.jpg", root / "blue" / "moved.jpg")
    moved = load_dataset(spec, cache_dir=tmp_path / "c")
    assert moved.stats["decoded"] == 0
    assert cold.content is not None
    assert moved.content is not None
    before = cold.content[cold.ids.tolist().index("red/001.jpg")]
    after = moved.ids.tolist().index("blue/moved.jpg")
    assert moved.content[after] == before
    assert moved.class_names[moved.labels[after]] == "blue"
    (root / "blue" / "new.png").write_bytes((root / "blue" / "000.png").read_bytes())
    picture((0, 200, 0), (16, 16), 9).save(root / "red" / "green.png")
    grown = load_dataset(spec, cache_dir=tmp_path / "c")
    assert grown.stats["decoded"] == 1  # the copy's bytes are known; only the new picture
    # each change replaces the folder's decoded pixels: the entry and its pointer, no pile-up
    assert len(list((tmp_path / "c").rglob("*.npz"))) == 2
    assert load_dataset(spec, cache_dir=tmp_path / "c").stats["decoded"] == 0


def test_exif_orientation_grey_mode_and_gif_first_frame(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    wide = np.zeros((20, 40), dtype=np.uint8)
    wide[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the white half on top
    Image.fromarray(wide).save(root / "a" / "rotated.jpg", exif=exif, quality=95)
    Image.fromarray(wide).save(root / "a" / "plain.png")
    frames = [Image.new("L", (40, 20), 200), Image.new("L", (40, 20), 10)]
    frames[0].save(root / "b" / "anim.gif", save_all=True, append_images=frames[1:])
    Image.new("L", (40, 20), 90).save(root / "b" / "x.bmp")
    data = load_dataset(
        spec_for(tmp_path, "{format: images, dir: imgs, size: [40, 20], aspect: stretch}")
    )
    assert data.features.shape == (4, 40, 20)  # every file grey: one channel
    rotated = data.features[data.ids.tolist().index("a/rotated.jpg")].astype(int)
    assert rotated[:15].mean() > 200 > 50 > rotated[25:].mean()
    assert abs(int(data.features[data.ids.tolist().index("b/anim.gif")].mean()) - 200) < 3


def test_labels_table_layout_b_with_nested_paths(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "imgs")
    rows = [
        {
            "file": p.relative_to(root).as_posix(),
            "kind": p.parts[-2] if p.parent.name != "nested" else "red",
        }
        for p in sorted(root.rglob("*.*"))
        if p.suffix in (".png", ".jpg")
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "labels.parquet")
    data = load_dataset(
        spec_for(
            tmp_path,
            "{format: images, dir: imgs, labels: labels.parquet, path_column: file,"
            " label_column: kind}",
        )
    )
    assert data.ids.tolist() == [r["file"] for r in rows]
    assert [data.class_names[i] for i in data.labels] == [r["kind"] for r in rows]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("path,label\nred/000.png,red\nred/nope.png,red\n", r"labels\.csv:3: no file .*nope\.png"),
        ("path,label\nred/000.png,red\n./red/000.png,blue\n", r"labels\.csv:3: duplicate path"),
        ("path,label\nREADME.md,red\n", r"labels\.csv:2: 'README.md' is not an image file"),
    ],
)
def test_labels_table_problems_name_the_row(tmp_path: Path, table: str, message: str) -> None:
    image_folder(tmp_path / "imgs")
    (tmp_path / "labels.csv").write_text(table)
    with pytest.raises(DataError, match=message):
        load_dataset(spec_for(tmp_path, "{format: images, dir: imgs, labels: labels.csv}"))


def test_corrupt_and_truncated_files_fail_or_are_skipped_when_asked(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "imgs")
    (root / "red" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    whole = (root / "blue" / "000.png").read_bytes()
    (root / "blue" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(
        DataError,
        match=r"blue/truncated\.png: cannot decode the image .*skip_unreadable.* \(1 more",
    ):
        load_dataset(spec_for(tmp_path, "{format: images, dir: imgs}"))
    data = load_dataset(
        spec_for(tmp_path, "{format: images, dir: imgs, skip_unreadable: true}"),
        cache_dir=tmp_path / "c",
    )
    assert len(data) == 12
    assert sorted(s["path"] for s in data.stats["skipped"]) == [
        "blue/truncated.png",
        "red/corrupt.jpg",
    ]
    assert all(s["reason"] for s in data.stats["skipped"])


def test_an_empty_folder_says_so(tmp_path: Path) -> None:
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "a" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"imgs: no image files \(1 other files ignored\)"):
        load_dataset(spec_for(tmp_path, "{format: images, dir: imgs}"))


def test_a_missing_folder_fails_at_collection(tmp_path: Path) -> None:
    from pytest_labelquality.errors import SpecError

    with pytest.raises(
        SpecError, match=r"d.labelquality.yaml:3: datasets\[0\].source.dir: no folder"
    ):
        spec_for(tmp_path, "{format: images, dir: nowhere}")


# --- texts ---------------------------------------------------------------------------------


def test_text_from_headerless_csv_joins_columns(tmp_path: Path) -> None:
    (tmp_path / "news.csv").write_bytes(
        '\ufeff"2","Title, with comma","Body ""quoted""\nsecond line"\n"1","Other","é"\n'.encode()
    )
    data = load_dataset(
        spec_for(
            tmp_path,
            "{format: text, path: news.csv, header: false, columns: [label, title, body],"
            " text: [title, body], label: label}",
        )
    )
    assert data.kind is DataKind.TEXT
    assert data.features.tolist() == ['Title, with comma\nBody "quoted"\nsecond line', "Other\né"]
    assert data.class_names == ("1", "2")
    assert data.labels.tolist() == [1, 0]


def test_text_csv_with_header_delimiter_bom_and_encoding(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes("\ufefftext;label\nbonjour;fr\nhello;en\n".encode("utf-8"))
    data = load_dataset(
        spec_for(tmp_path, "{format: text, path: a.csv, delimiter: ';', text: text, label: label}")
    )
    assert data.features.tolist() == ["bonjour", "hello"]
    (tmp_path / "b.csv").write_bytes("text,label\ncaf\xe9,fr\nhi,en\n".encode("latin-1"))
    data = load_dataset(
        spec_for(
            tmp_path, "{format: text, path: b.csv, encoding: latin-1, text: text, label: label}"
        )
    )
    assert data.features.tolist() == ["café", "hi"]


def test_text_from_jsonl_and_parquet_agree(tmp_path: Path) -> None:
    rows = [{"t": f"text {i}", "y": "ab"[i % 2], "key": f"k{i}"} for i in range(6)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    loaded = [
        load_dataset(
            spec_for(tmp_path, f"{{format: text, path: d.{ext}, text: t, label: y, id: key}}")
        )
        for ext in ("jsonl", "parquet")
    ]
    for data in loaded:
        assert data.ids.tolist() == [r["key"] for r in rows]
        assert data.features.tolist() == [r["t"] for r in rows]
    np.testing.assert_array_equal(loaded[0].labels, loaded[1].labels)


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("d.csv", b"text,label\nfine,a\n  ,b\n", r"d\.csv:3: empty text in 'text'"),
        ("d.jsonl", b'{"text": "x", "label": "a"}\n{"label": "b"}\n', r"d\.jsonl:2: empty text"),
        ("d.csv", b"text,label\nfine,a\nbad \xff\xfe byte,b\n", r"d\.csv:3: not valid utf-8"),
        ("d.jsonl", b'{"text": "x", "label": "a"}\n{"text": \n', r"d\.jsonl:2: not valid JSON"),
        ("d.csv", b"text,label\nx,\n", r"d\.csv:2: no label in column 'label'"),
        ("d.xlsx", b"", r"cannot tell the table format from the extension '\.xlsx'"),
    ],
)
def test_text_problems_name_file_and_line(
    tmp_path: Path, name: str, body: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(body)
    with pytest.raises(DataError, match=message):
        load_dataset(
            spec_for(tmp_path, f"{{format: text, path: {name}, text: text, label: label}}")
        )


def test_parquet_without_the_named_column(tmp_path: Path) -> None:
    pq.write_table(pa.table({"body": ["a", "b"], "label": ["x", "y"]}), tmp_path / "d.parquet")
    with pytest.raises(DataError, match=r"d\.parquet: no column 'text'; columns: body, label"):
        load_dataset(
            spec_for(tmp_path, "{format: text, path: d.parquet, text: text, label: label}")
        )


# --- feature tables ------------------------------------------------------------------------


def test_jsonl_parquet_and_csv_tables_encode_categorical_columns(tmp_path: Path) -> None:
    rows = [
        {"size": float(i), "colour": "red" if i % 3 else "", "y": "ab"[i % 2]} for i in range(6)
    ]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    (tmp_path / "t.csv").write_text(
        "size,colour,y\n" + "".join(f"{r['size']},{r['colour']},{r['y']}\n" for r in rows)
    )
    for fmt in ("jsonl", "parquet", "csv"):
        data = load_dataset(spec_for(tmp_path, f"{{format: {fmt}, path: t.{fmt}, label: y}}"))
        assert data.feature_names == ("size", "colour")
        assert data.categories == ((), ("", "red"))
        assert data.features[:, 1].tolist() == [0, 1, 1, 0, 1, 1]
        assert data.features[:, 0].tolist() == [0, 1, 2, 3, 4, 5]


def test_a_missing_extra_is_named(tmp_path: Path) -> None:
    (tmp_path / "d.parquet").write_bytes(b"")
    spec_for(tmp_path, "{format: text, path: d.parquet, text: t, label: y}")
    probe = (
        "import sys; sys.modules['pyarrow'] = None; sys.modules['PIL'] = None\n"
        "from pathlib import Path\n"
        "from pytest_labelquality.errors import DataError\n"
        "from pytest_labelquality.sources import load_dataset\n"
        "from pytest_labelquality.spec import load_spec\n"
        "for spec in load_spec(Path(sys.argv[1])):\n"
        "    try:\n"
        "        load_dataset(spec)\n"
        "    except DataError as exc:\n"
        "        print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "d.labelquality.yaml")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "needs pyarrow, which is not installed" in out
    assert "pytest-labelquality[parquet]" in out


# --- end to end ------------------------------------------------------------------------------

WORDS = {
    "sport": ["match", "goal", "team", "league", "coach", "season", "striker", "referee"],
    "money": ["bank", "shares", "market", "profit", "loan", "stock", "bond", "invest"],
}

FACTORY = """
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline


def bag_of_words(seed):
    return make_pipeline(CountVectorizer(), LogisticRegression(random_state=seed))
"""

END_TO_END = """\
datasets:
  - name: news
    source:
      format: text
      path: news.csv
      text: [title, body]
      label: topic
      flip: {rate: 0.1, seed: 1}
    cv: {folds: 3}
    gate: {max_noise_rate: 0.5}
  - name: news-own-model
    source: {format: text, path: news.jsonl, text: body, label: topic}
    model: {factory: "textfactory:bag_of_words"}
    cv: {folds: 3}
    gate: {max_noise_rate: 0.5}
  - name: pictures
    source: {format: images, dir: imgs, size: [12, 12]}
    model: {name: logistic_regression, params: {C: 0.1}}
    cv: {folds: 3}
    gate: {max_noise_rate: 0.5}
  - name: table
    source: {format: jsonl, path: table.jsonl, label: y}
    cv: {folds: 3}
    gate: {max_noise_rate: 0.5}
  - name: table-parquet
    source: {format: parquet, path: table.parquet, label: y}
    model: {name: hist_gradient_boosting, params: {max_iter: 20}}
    cv: {folds: 3}
    gate: {max_noise_rate: 0.5}
  - name: pictures-by-table
    source: {format: images, dir: imgs, labels: labels.jsonl, size: [12, 12], skip_unreadable: true}
    model: {name: logistic_regression, params: {C: 0.1}}
    cv: {folds: 3}
    gate: {max_noise_rate: 0.5}
"""


def test_every_new_format_end_to_end_and_warm(pytester: pytest.Pytester) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(90):
        topic = ("sport", "money")[i % 2]
        words = rng.choice(WORDS[topic], size=8).tolist()
        rows.append(
            {
                "title": " ".join(words[:3]),
                "body": " ".join(words[3:]) + " <b>&</b>",
                "topic": topic,
            }
        )
    with (pytester.path / "news.csv").open("w", encoding="utf-8") as handle:
        handle.write("title,body,topic\n")
        handle.writelines(f"{r['title']},{r['body']},{r['topic']}\n" for r in rows)
    (pytester.path / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (pytester.path / "textfactory.py").write_text(FACTORY)
    image_folder(pytester.path / "imgs", per_class=9)
    table = [
        {"w": float(rng.normal(i % 2 * 3)), "shop": ("north", "south")[i % 2], "y": "ab"[i % 2]}
        for i in range(60)
    ]
    (pytester.path / "table.jsonl").write_text("".join(json.dumps(r) + "\n" for r in table))
    pq.write_table(pa.Table.from_pylist(table), pytester.path / "table.parquet")
    (pytester.path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    listed = [
        {"path": p.relative_to(pytester.path / "imgs").as_posix(), "label": p.parts[-2]}
        for p in sorted((pytester.path / "imgs").glob("*/*.png"))
    ] + [{"path": "broken.png", "label": "red"}]
    (pytester.path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in listed))
    pytester.makefile(".labelquality.yaml", data=END_TO_END)

    pytester.runpytest_subprocess("--label-quality").assert_outcomes(passed=6)
    report = pytester.path / "label-quality-report"
    results = {
        d["name"]: d for d in json.loads((report / "label-quality.json").read_text())["datasets"]
    }
    news = results["news"]
    # the text default: tfidf_encoder where the encoders extra is installed (dev has it)
    assert news["model"]["name"] == (
        "tfidf_encoder" if encoders_installed("text") else "tfidf_linear"
    )
    assert news["injected"]["recall"] >= 0.5
    assert news["flagged"][0]["preview"]["text"].count("\n") == 1  # title and body, joined
    assert results["news-own-model"]["oof_accuracy"] > 0.9
    pictures = results["pictures"]
    assert pictures["source"]["decoded"] == 18
    assert pictures["source"]["ignored"] == 3  # README.md, .DS_Store, broken.png outside a class
    if pictures["flagged"]:
        assert pictures["flagged"][0]["preview"]["thumbnail"] is True
    assert results["table"]["oof_accuracy"] > 0.9
    assert results["table-parquet"]["oof_accuracy"] > 0.9
    by_table = results["pictures-by-table"]
    assert by_table["items"] == len(listed) - 1
    assert by_table["source"]["skipped"][0]["path"] == "broken.png"
    assert any(
        w["code"] == "unreadable_skipped" and "broken.png" in w["message"]
        for w in by_table["warnings"]
    )
    html = (report / "index.html").read_text()
    assert 'type="search" name="text"' in html
    assert "1 unreadable file(s) skipped (source.skip_unreadable): broken.png" in html
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in html
    assert "<b>&</b>" not in html

    warm = pytester.runpytest_subprocess("--label-quality")
    warm.assert_outcomes(passed=6)
    again = {
        d["name"]: d for d in json.loads((report / "label-quality.json").read_text())["datasets"]
    }
    assert {d["cache"]["status"] for d in again.values()} == {"hit"}
    assert again["pictures"]["source"]["decoded"] == 0
    assert again["news"]["noise"] == news["noise"]


def test_image_previews_come_from_the_original_file(tmp_path: Path) -> None:
    import base64
    import io

    from pytest_labelquality.previews import preview

    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    picture((10, 200, 10), (300, 150), 0).save(root / "a" / "big.jpg")
    picture((10, 10, 200), (30, 30), 1).save(root / "b" / "small.png")
    data = load_dataset(spec_for(tmp_path, "{format: images, dir: imgs, size: [8, 8]}"))
    shown = preview(data, data.ids.tolist().index("a/big.jpg"))
    assert shown.thumbnail is True
    assert shown.image is not None
    png = base64.b64decode(shown.image.split(",", 1)[1])
    assert Image.open(io.BytesIO(png)).size == (128, 64)  # the original's shape, downscaled
    (root / "a" / "big.jpg").unlink()  # gone since: the working-size pixels stand in
    assert preview(data, data.ids.tolist().index("a/big.jpg")).thumbnail is None


KERAS_FACTORY = """
import keras
from keras import layers

VOCAB = {vocab!r}


def text_model(num_classes, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(shape=(), dtype="string"),
        layers.TextVectorization(output_mode="multi_hot", vocabulary=VOCAB),
        layers.Dense(num_classes, activation="softmax"),
    ])
"""


@pytest.mark.slow
def test_a_keras_factory_receives_raw_strings(pytester: pytest.Pytester) -> None:
    rng = np.random.default_rng(0)
    with (pytester.path / "news.jsonl").open("w") as handle:
        for i in range(60):
            topic = ("sport", "money")[i % 2]
            text = " ".join(rng.choice(WORDS[topic], size=6))
            handle.write(json.dumps({"text": text, "y": topic}) + "\n")
    vocab = WORDS["sport"] + WORDS["money"]
    (pytester.path / "kfactory.py").write_text(KERAS_FACTORY.format(vocab=vocab))
    pytester.makefile(
        ".labelquality.yaml",
        data="datasets:\n  - name: k\n    source: {format: text, path: news.jsonl, text: text,"
        " label: y}\n    model: {factory: 'kfactory:text_model', epochs: 20, batch_size: 16,"
        " learning_rate: 0.05}\n    cv: {folds: 3}\n    gate: {max_noise_rate: 0.5}\n",
    )
    pytester.runpytest_subprocess("--label-quality").assert_outcomes(passed=1)
    report = pytester.path / "label-quality-report" / "label-quality.json"
    assert json.loads(report.read_text())["datasets"][0]["oof_accuracy"] > 0.9
