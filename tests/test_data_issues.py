"""Duplicates, leaks between splits and outliers, beside wrong labels: scikit-learn's real
digits written as a CSV with a split column, and known defects added to them."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_report_browser import Browser, browser  # noqa: F401 (the fixture)

from pytest_labelquality import knn
from pytest_labelquality.data_issues import find

SPEC = """\
datasets:
  - name: digits
    source: {{format: csv, path: digits.csv, label: label, split: split}}
    model: {{name: logistic_regression}}
    gate: {{max_noise_rate: 0.5{rules}}}
"""


def write_digits(path: Path) -> dict[str, list[tuple[int, int]] | list[int]]:
    """The 1,797 digits (80% train, 20% test) and, after them: 5 exact copies under another
    label, 5 near copies (one pixel two levels darker), 4 copies of train digits put in test,
    5 rows of noise. Returns the injected pairs (original, copy) and outliers by row index."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels, labels = digits.data.astype(int), digits.target
    rng = np.random.default_rng(0)
    n = len(labels)
    split = np.where(rng.random(n) < 0.8, "train", "test")
    rows = [(pixels[i], int(labels[i]), str(split[i])) for i in range(n)]
    injected: dict[str, Any] = {"conflicting": [], "near": [], "leaks": [], "outliers": []}
    for i in rng.choice(n, 5, replace=False).tolist():
        injected["conflicting"].append((i, len(rows)))
        rows.append((pixels[i], int(labels[i] + 1) % 10, str(split[i])))
    for i in rng.choice(n, 5, replace=False).tolist():
        near = pixels[i].copy()
        darkest = int(np.argmax(near))
        near[darkest] -= 2
        injected["near"].append((i, len(rows)))
        rows.append((near, int(labels[i]), str(split[i])))
    for i in rng.choice(np.flatnonzero(split == "train"), 4, replace=False).tolist():
        injected["leaks"].append((i, len(rows)))
        rows.append((pixels[i], int(labels[i]), "test"))
    for k in range(5):
        injected["outliers"].append(len(rows))
        rows.append((rng.integers(0, 17, 64), k, "train"))
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*(f"p{i}" for i in range(64)), "label", "split"])
        writer.writerows([*x.tolist(), label, s] for x, label, s in rows)
    return injected


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Any]:
    """One real run of the gate on the digits with defects, its results and its output."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("issues")
    injected = write_digits(root / "digits.csv")
    rules = ", max_conflicting_duplicates: 4, max_leaks: 0, max_outlier_share: 0.05"
    (root / "digits.labelquality.yaml").write_text(SPEC.format(rules=rules))
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--label-quality"]
    command += ["--label-quality-markdown=summary.md", "digits.labelquality.yaml"]
    run = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    document = json.loads((root / "label-quality-report" / "label-quality.json").read_text())
    return root, injected, (run, document["datasets"][0], command)


def _pairs(listed: list[dict[str, Any]]) -> set[tuple[int, int]]:
    return {(p["a"]["index"], p["b"]["index"]) for p in listed}


def test_each_kind_finds_what_was_added(checked: tuple[Path, dict[str, Any], Any]) -> None:
    _, injected, (_, result, _) = checked
    issues = result["issues"]
    assert issues["vectors"] == "raw features"
    conflicting = {
        tuple(i["index"] for i in g["items"]) for g in issues["groups"] if g["conflicting"]
    }
    assert conflicting == set(injected["conflicting"])
    assert issues["conflicting_groups"] == 5
    # the near copies are the most similar pairs; the digits hold a few natural ones below them
    assert {(p["a"]["index"], p["b"]["index"]) for p in issues["pairs"][:5]} == set(
        injected["near"]
    )
    assert all(p["similarity"] >= issues["near_similarity"] for p in issues["pairs"])
    flagged = [o["item"]["index"] for o in issues["outlier_items"]]
    assert set(injected["outliers"]) <= set(flagged[:6])  # beside one odd real digit
    # a table's columns as z-scores: the far-out fence also flags about 1% of the real digits
    assert len(flagged) == issues["outliers"] < 0.02 * result["items"]
    exact_leaks = {
        (p["a"]["index"], p["b"]["index"]) for p in issues["leak_pairs"] if p["similarity"] is None
    }
    assert exact_leaks == set(injected["leaks"])
    assert all(p["a"]["split"] != p["b"]["split"] for p in issues["leak_pairs"])
    assert set(issues["splits"]) == {"train", "test"}
    assert sum(issues["splits"].values()) == result["items"] == 1797 + 19


def test_the_rules_fail_with_their_examples_and_name_no_label_fix(
    checked: tuple[Path, dict[str, Any], Any],
) -> None:
    _, _, (run, result, _) = checked
    assert run.returncode == 1, run.stdout
    failed = {r["rule"]: r for r in result["gate"]["failed_rules"]}
    assert set(failed) == {"max_conflicting_duplicates", "max_leaks"}
    assert failed["max_conflicting_duplicates"]["value"] == 5
    assert failed["max_leaks"]["value"] == result["issues"]["leaks"] >= 4
    (message,) = [
        line for line in run.stdout.splitlines() if line.startswith("5 group(s) of identical")
    ]
    assert "digits/" not in message  # rows of a table without an id column: content hashes
    assert "exceed max_conflicting_duplicates 4 (" in message
    assert "in test) ~ " in message or "in train) ~ " in message
    assert "remove or merge the duplicates" in message
    assert "fix their labels" not in message  # no label rule failed
    assert "digits: 9 group(s) of identical items (5 with different labels)" in run.stdout


def test_the_summary_and_report_show_each_kind(checked: tuple[Path, dict[str, Any], Any]) -> None:
    root, _, (_, result, _) = checked
    summary = (root / "summary.md").read_text()
    assert "Duplicates, leaks and outliers:" in summary
    assert "- digits: 9 group(s) of identical items (5 with different labels)" in summary
    html = (root / "label-quality-report" / "index.html").read_text()
    assert '<section class="data-issues"' in html
    for kind in ("leaks", "near", "exact"):
        assert f'<div class="pair-gallery" data-kind="{kind}">' in html
    assert html.count('<figure class="pair conflicting" ') == 5
    assert 'class="split">test</strong>' in html
    assert html.count('<figure class="outlier" ') == result["issues"]["outliers"]


def test_a_warm_run_searches_nothing_and_finds_the_same(
    checked: tuple[Path, dict[str, Any], Any],
) -> None:
    import subprocess

    root, _, (first, result, command) = checked
    assert "duplicates and outliers searched on raw features" in first.stdout
    again = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    assert "searched" not in again.stdout
    document = json.loads((root / "label-quality-report" / "label-quality.json").read_text())
    assert document["datasets"][0]["issues"] == result["issues"]


def test_clean_digits_pass_and_the_check_can_be_turned_off(pytester: pytest.Pytester) -> None:
    rules = (
        ", max_conflicting_duplicates: 0, max_near_duplicate_share: 0.01, max_outlier_share: 0.02"
    )
    pytester.makefile(
        ".labelquality.yaml",
        digits="datasets:\n"
        "  - name: clean\n    source: {format: sklearn, name: digits}\n"
        "    model: {name: logistic_regression}\n"
        f"    gate: {{max_noise_rate: 0.5{rules}}}\n"
        "  - name: unchecked\n    source: {format: sklearn, name: digits}\n"
        "    model: {name: logistic_regression}\n    gate: {max_noise_rate: 0.5}\n"
        "    checks: {enabled: false}\n",
    )
    run = pytester.runpytest_subprocess("--label-quality", "-p", "no:cacheprovider")
    run.assert_outcomes(passed=2)
    document = json.loads((pytester.path / "label-quality-report/label-quality.json").read_text())
    issues = {d["name"]: d.get("issues") for d in document["datasets"]}
    assert issues["unchecked"] is None
    assert issues["clean"]["conflicting_groups"] == 0
    assert issues["clean"]["splits"] is None
    assert issues["clean"]["leak_pairs"] == []


def test_a_partition_finds_what_the_exact_search_finds() -> None:
    """The coarse partition that large datasets go through, on real digits small enough to
    compare with the exact search: the same nearest item for almost all, every near copy."""
    from sklearn.datasets import load_digits

    pixels = load_digits().data.astype(np.float32)
    pixels -= pixels.mean(axis=0)
    rng = np.random.default_rng(1)
    copies = rng.choice(len(pixels), 20, replace=False)
    near = pixels[copies] + rng.normal(0, 0.05, (20, 64)).astype(np.float32)
    units = knn.unit_rows(np.concatenate([pixels, near]))
    exact = knn.nearest(units)
    through = knn.nearest(units, partition=knn.build_partition(units, seed=0))
    same = np.mean(exact.neighbours[:, 0] == through.neighbours[:, 0])
    assert same > 0.95
    copy_rows = np.arange(len(pixels), len(pixels) + 20)
    assert (through.neighbours[copy_rows, 0] == copies).all()
    # where both found a neighbour, the partition's is never more similar than the exact one
    assert (through.similarity[:, 0] <= exact.similarity[:, 0] + 1e-6).all()


def test_identical_content_is_exact_not_near() -> None:
    vectors = np.array([[1, 0], [1, 0], [1, 0.01], [0, 1], [-1, 0]], dtype=np.float32)
    content = np.array(["a", "a", "b", "c", "d"])
    found = find(vectors, content, np.array([0, 0, 0, 1, 1]), threshold=0.99)
    assert [g.tolist() for g in found.exact_groups()] == [[0, 1]]
    assert sorted(map(tuple, found.near_pairs.tolist())) == [(0, 2), (1, 2)]
    assert found.redundant().tolist() == [1, 2]


def test_photos_copied_mirrored_resized_or_blank_are_found_under_the_encoder(
    pytester: pytest.Pytester,
    photo_folders: Any,
    browser: Browser,  # noqa: F811 (the fixture imported above)
) -> None:
    """Real CIFAR photos in class folders under EfficientNet-Lite0: an exact copy filed under
    another class, a mirrored and a resized copy, and blank and noise images; different photos
    of similar scenes are not taken for copies."""
    pytest.importorskip("onnxruntime")
    from PIL import Image, ImageOps

    root = pytester.path / "photos"
    photo_folders(root, per_class=40, moved=0)
    frogs = sorted((root / "frog").glob("*.jpg"))
    ships = sorted((root / "ship").glob("*.jpg"))
    (root / "ship" / "copy-of-frog.jpg").write_bytes(frogs[0].read_bytes())
    ImageOps.mirror(Image.open(frogs[1])).save(root / "frog" / "mirrored.png")
    Image.open(ships[2]).resize((29, 29)).resize((32, 32)).save(root / "ship" / "resized.png")
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(np.full((32, 32, 3), 40 * k, np.uint8)).save(
            root / "ship" / f"blank{k}.png"
        )
        noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(noise).save(root / "airplane" / f"noise{k}.png")
    pytester.makefile(
        ".labelquality.yaml",
        photos="datasets:\n"
        "  - name: photos\n    source: {format: images, dir: photos}\n"
        "    model: {name: encoder_linear}\n    cv: {folds: 3}\n"
        "    gate: {max_noise_rate: 0.9, max_conflicting_duplicates: 0}\n",
    )
    run = pytester.runpytest_subprocess("--label-quality", "-p", "no:cacheprovider")
    run.assert_outcomes(failed=1)
    document = json.loads((pytester.path / "label-quality-report/label-quality.json").read_text())
    issues = document["datasets"][0]["issues"]
    assert issues["vectors"] == "efficientnet_lite0 embeddings"
    (group,) = [[i["id"] for i in g["items"]] for g in issues["groups"]]
    assert group == [f"frog/{frogs[0].name}", "ship/copy-of-frog.jpg"]
    near = {frozenset((p["a"]["id"], p["b"]["id"])) for p in issues["pairs"]}
    assert near == {
        frozenset((f"frog/{frogs[1].name}", "frog/mirrored.png")),
        frozenset((f"ship/{ships[2].name}", "ship/resized.png")),
    }
    odd = {o["item"]["id"] for o in issues["outlier_items"]}
    made = {f"ship/blank{k}.png" for k in range(3)} | {f"airplane/noise{k}.png" for k in range(3)}
    assert len(odd & made) >= 5
    assert len(odd - made) <= 1
    assert "duplicates and outliers searched on efficientnet_lite0 embeddings (all items)" in (
        run.stdout.str()
    )
    # in chromium: each pair side by side, both photos drawn, both labels; the conflicting
    # group marked; no script error
    page = browser.page
    page.goto((pytester.path / "label-quality-report" / "index.html").as_uri(), wait_until="load")
    pairs = page.locator('.pair-gallery[data-kind="near"] .pair')
    assert pairs.count() == 2
    for k in range(2):
        boxes = [pairs.nth(k).locator(".issue-item").nth(j).bounding_box() for j in (0, 1)]
        assert boxes[0]
        assert boxes[1]
        assert boxes[1]["x"] >= boxes[0]["x"] + boxes[0]["width"]  # beside, not below
        assert abs(boxes[1]["y"] - boxes[0]["y"]) < 2
        drawn = (
            pairs.nth(k)
            .locator("img")
            .evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
        )
        assert drawn == [True, True]
    conflicting = page.locator('.pair-gallery[data-kind="exact"] .pair.conflicting')
    assert conflicting.locator(".labels strong").all_inner_texts() == ["frog", "ship"]
    # the filters: only what holds a ship
    section = page.locator("section.data-issues")
    figures = section.locator("figure.pair, figure.outlier")
    section.locator('select[name="class"]').select_option("ship")
    shown = figures.evaluate_all("fs => fs.filter(f => !f.hidden).length")
    holding_ship = (
        sum("ship" in [i["class"] for i in g["items"]] for g in issues["groups"])
        + sum("ship" in (p["a"]["class"], p["b"]["class"]) for p in issues["pairs"])
        + sum(o["item"]["class"] == "ship" for o in issues["outlier_items"])
    )
    assert shown == holding_ship
    assert section.locator("form.issue-filters output").inner_text() == (
        f"showing {holding_ship} of {figures.count()}"
    )
    # a reviewer accepts the copy filed under ship: the page builds the command, and it works
    section.locator(
        'button[data-for="ship/copy-of-frog.jpg"][data-decision="duplicate-ok"]'
    ).click()
    section.locator('.issue-review-panel input[name="by"]').fill("ada")
    command = section.locator(".issue-review-panel .review-command").inner_text()
    assert command.startswith(
        "python -m pytest_labelquality.reviews add photos.labelquality.yaml photos"
        " ship/copy-of-frog.jpg --decision duplicate-ok --by ada"
    ), command
    assert browser.errors == []
    import shlex
    import subprocess
    import sys

    words = shlex.split(command)
    subprocess.run([sys.executable, *words[1:]], cwd=pytester.path, check=True)
    accepted = pytester.runpytest_subprocess("--label-quality", "-p", "no:cacheprovider")
    accepted.assert_outcomes(passed=1)  # max_conflicting_duplicates: 0 holds again
    # a change adds another mirrored frog: only the new photo is encoded and searched
    ImageOps.mirror(Image.open(frogs[3])).save(root / "frog" / "mirrored-again.png")
    again = pytester.runpytest_subprocess("--label-quality", "-p", "no:cacheprovider")
    again.stdout.fnmatch_lines(["*photos: duplicates and outliers searched on * (the new items)*"])
    document = json.loads((pytester.path / "label-quality-report/label-quality.json").read_text())
    pairs = {
        frozenset((p["a"]["id"], p["b"]["id"])) for p in document["datasets"][0]["issues"]["pairs"]
    }
    assert pairs == near | {frozenset((f"frog/{frogs[3].name}", "frog/mirrored-again.png"))}


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NEWS = SHARED / "ag_news" / "test.csv"
CIFAR = SHARED / "cifar10_train_subset"


def test_news_copied_under_another_topic_recased_or_in_another_language(
    pytester: pytest.Pytester,
) -> None:
    """300 real AG News items with a split column: one copied under another topic, one
    upper-cased, one train item copied into test, and three texts in other languages."""
    pytest.importorskip("py3langid")
    if not NEWS.is_file():
        pytest.skip(f"AG News not found at {NEWS}")
    with NEWS.open(newline="", encoding="utf-8") as handle:
        rows = [(f"{title}\n{body}", int(c)) for c, title, body in list(csv.reader(handle))[:300]]
    topics = ("World", "Sports", "Business", "Sci/Tech")
    table = [
        (text, topics[c - 1], "test" if i % 5 == 0 else "train") for i, (text, c) in enumerate(rows)
    ]
    table.append((rows[1][0], topics[rows[1][1] % 4], "train"))  # another topic
    table.append((rows[2][0].upper(), topics[rows[2][1] - 1], "train"))
    table.append((rows[3][0], topics[rows[3][1] - 1], "test"))  # row 3 is in train
    foreign = [
        "Die Regierung hat am Montag ein neues Gesetz zur Energieversorgung vorgestellt.",
        "Le gouvernement a annoncé mardi une réforme du système des retraites.",
        "El ayuntamiento aprobó ayer el presupuesto para el próximo año en la ciudad.",
    ]
    table += [(text, "World", "train") for text in foreign]
    with (pytester.path / "news.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "topic", "split"])
        writer.writerows(table)
    pytester.makefile(
        ".labelquality.yaml",
        news="datasets:\n"
        "  - name: news\n"
        "    source: {format: text, path: news.csv, text: text, label: topic, split: split}\n"
        "    model: {name: tfidf_linear}\n    cv: {folds: 3}\n"
        "    gate: {max_noise_rate: 0.9, max_leaks: 0}\n",
    )
    run = pytester.runpytest_subprocess("--label-quality", "-p", "no:cacheprovider")
    run.assert_outcomes(failed=1)
    document = json.loads((pytester.path / "label-quality-report/label-quality.json").read_text())
    issues = document["datasets"][0]["issues"]
    assert issues["vectors"] == "raw features"
    assert issues["language"] == "en"
    groups = [sorted(i["index"] for i in g["items"]) for g in issues["groups"]]
    assert [g for g, x in zip(groups, issues["groups"], strict=True) if x["conflicting"]] == [
        [1, 300]
    ]
    assert [3, 302] in groups
    assert {(p["a"]["index"], p["b"]["index"]) for p in issues["pairs"]} >= {(2, 301)}
    assert {(p["a"]["index"], p["b"]["index"]) for p in issues["leak_pairs"]} == {(3, 302)}
    # the item names a row of the file a person can find: file, line and the text's start
    (leak,) = issues["leak_pairs"]
    assert leak["b"]["location"].startswith("news.csv:")
    languages = {o["item"]["index"]: o["language"] for o in issues["outlier_items"]}
    assert {i: languages.get(i) for i in (303, 304, 305)} == {303: "de", 304: "fr", 305: "es"}
    assert (
        "1 pair(s) of items in different splits are duplicates, over max_leaks 0"
        in run.stdout.str()
    )


def test_split_folders_above_the_class_folders_name_each_photos_split(
    pytester: pytest.Pytester,
) -> None:
    """``train/<class>/...`` and ``test/<class>/...``: a train photo copied into test is a
    leak; one mirrored into test is not found on raw pixels (an encoder's embeddings find it,
    see above); the test split need not hold every class."""
    import shutil

    from PIL import Image, ImageOps

    if not (CIFAR / "frog").is_dir():
        pytest.skip(f"CIFAR-10 subset not found at {CIFAR}")
    root = pytester.path / "photos"
    for split, classes, start in (
        ("train", ("frog", "ship", "cat"), 0),
        ("test", ("frog", "ship"), 30),
    ):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for f in sorted((CIFAR / name).glob("*.jpg"))[start : start + 30]:
                shutil.copy(f, root / split / name / f.name)
    train_frogs = sorted((root / "train" / "frog").glob("*.jpg"))
    shutil.copy(train_frogs[0], root / "test" / "frog" / "copied.jpg")
    ImageOps.mirror(Image.open(train_frogs[1])).save(root / "test" / "frog" / "mirrored.png")
    pytester.makefile(
        ".labelquality.yaml",
        photos="datasets:\n"
        "  - name: photos\n    source: {format: images, dir: photos, split_folders: true}\n"
        "    model: {name: logistic_regression}\n    cv: {folds: 3}\n"
        "    gate: {max_noise_rate: 0.9, max_leaks: 0}\n",
    )
    run = pytester.runpytest_subprocess("--label-quality", "-p", "no:cacheprovider")
    run.assert_outcomes(failed=1)
    document = json.loads((pytester.path / "label-quality-report/label-quality.json").read_text())
    issues = document["datasets"][0]["issues"]
    assert issues["splits"] == {"train": 90, "test": 62}
    assert document["datasets"][0]["classes"] == ["cat", "frog", "ship"]
    leaks = {
        (frozenset((p["a"]["id"], p["b"]["id"])), p["similarity"]) for p in issues["leak_pairs"]
    }
    assert leaks == {
        (frozenset((f"train/frog/{train_frogs[0].name}", "test/frog/copied.jpg")), None)
    }
    assert document["datasets"][0]["gate"]["failed_rules"][0]["rule"] == "max_leaks"


def test_a_review_accepts_a_duplicate_and_an_outlier(
    checked: tuple[Path, dict[str, Any], Any], tmp_path: Path
) -> None:
    """``reviews add --decision duplicate-ok`` on a conflicting copy and ``outlier-ok`` on an
    outlier: their group and the outlier stop counting, the rule on conflicts then passes."""
    import shutil
    import subprocess
    import sys

    source, _, (_, result, command) = checked
    root = tmp_path / "repo"
    shutil.copytree(source, root)
    issues = result["issues"]
    copy = next(g for g in issues["groups"] if g["conflicting"])["items"][1]["id"]
    outlier = issues["outlier_items"][0]["item"]["id"]
    add = [sys.executable, "-m", "pytest_labelquality.reviews", "add", "digits.labelquality.yaml"]
    for decision, item in (("duplicate-ok", copy), ("outlier-ok", outlier)):
        subprocess.run(
            [*add, "digits", item, "--decision", decision, "--by", "ada"],
            cwd=root,
            check=True,
            capture_output=True,
        )
    refused = subprocess.run(
        [*add, "digits", "digits/1", "--decision", "remove", "--by", "ada"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert "not among the duplicates, leaks and outliers of 'digits'" in refused.stderr
    again = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    document = json.loads((root / "label-quality-report" / "label-quality.json").read_text())
    after = document["datasets"][0]
    assert after["issues"]["conflicting_groups"] == issues["conflicting_groups"] - 1
    assert after["issues"]["outliers"] == issues["outliers"] - 1
    assert after["issues"]["accepted"] == 2
    assert {r["rule"] for r in after["gate"]["failed_rules"]} == {"max_leaks"}, again.stdout
    assert after["noise"] == result["noise"]  # reviews of duplicates do not touch the labels


def test_against_a_baseline_each_kind_counts_what_the_change_brought_in(
    pytester: pytest.Pytester,
) -> None:
    """The baseline holds the digits and the conflicting copies; the change adds the near
    copies, the leaks and the noise rows: those are new, the conflicts are not."""
    injected = write_digits(pytester.path / "digits.csv")
    full = (pytester.path / "digits.csv").read_text().splitlines(keepends=True)
    (pytester.path / "digits.csv").write_text("".join(full[: 1 + 1797 + 5]))
    pytester.makefile(".labelquality.yaml", digits=SPEC.format(rules=""))
    flags = ["--label-quality", "-p", "no:cacheprovider"]
    pytester.runpytest_subprocess(*flags, "--label-quality-update-baseline").assert_outcomes(
        passed=1
    )
    (pytester.path / "digits.csv").write_text("".join(full))
    run = pytester.runpytest_subprocess(*flags)
    run.assert_outcomes(passed=1)
    document = json.loads((pytester.path / "label-quality-report/label-quality.json").read_text())
    issues = document["datasets"][0]["issues"]
    assert issues["conflicting_groups"] == 5
    assert issues["new"]["conflicting_groups"] == 0
    assert issues["new"]["near_pairs"] == len(injected["near"])  # the natural ones are old
    assert issues["new"]["leaks"] == len(injected["leaks"])
    assert issues["new"]["outliers"] == len(injected["outliers"])
    changed = {i["id"] for o in issues["outlier_items"] for i in [o["item"]] if i["changed"]}
    assert len(changed) == 5
    assert (
        "this change brought in 0 conflicting group(s), 5 near pair(s), 5 outlier(s), 4 leak(s)"
        in run.stdout.str()
    )
    # the rule on what is new: the 5 old conflicts do not count, the change's 14 do
    new = sum(issues["new"].values())
    for limit, outcome in ((new, "passed"), (new - 1, "failed")):
        rules = f", max_conflicting_duplicates: 5, max_new_data_issues: {limit}"
        pytester.makefile(".labelquality.yaml", digits=SPEC.format(rules=rules))
        judged = pytester.runpytest_subprocess(*flags)
        judged.assert_outcomes(**{outcome: 1})
        judged.stdout.no_fnmatch_line("*training*")  # the gate's settings retrain nothing
    document = json.loads((pytester.path / "label-quality-report/label-quality.json").read_text())
    (failed,) = document["datasets"][0]["gate"]["failed_rules"]
    assert (failed["rule"], failed["value"], failed["limit"]) == ("max_new_data_issues", 14, 13)
    assert failed["message"].startswith(
        "this change brought in 14 duplicate(s), leak(s) and outlier(s) (0 conflicting group(s),"
        " 5 near pair(s), 5 outlier(s), 4 leak(s)), over max_new_data_issues 13 ("
    )
    listed = [
        *(i for p in (*issues["pairs"], *issues["leak_pairs"]) for i in (p["a"], p["b"])),
        *(o["item"] for o in issues["outlier_items"]),
    ]
    brought = {i["id"] for i in listed if i["changed"]}
    assert sum(f"{i} (" in failed["message"] for i in brought) == 3  # the first three named
    # without a baseline the rule cannot judge: the run says so and passes on the other rules
    for baseline in pytester.path.rglob("*baseline*"):
        if baseline.is_file():
            baseline.unlink()
    alone = pytester.runpytest_subprocess(*flags)
    alone.assert_outcomes(passed=1)
    alone.stdout.fnmatch_lines(["*max_new_data_issues) need a baseline*"])


def test_an_incremental_search_finds_what_a_full_one_finds() -> None:
    """Real digits as vectors: 30 near copies, then a change that removes 40 items, relabels
    20 and adds 25 near copies more. Searching only the new items against all, keeping the
    earlier pairs among the others, gives the full search's pairs."""
    from sklearn.datasets import load_digits

    from pytest_labelquality.data_issues import Previous

    digits = load_digits()
    rng = np.random.default_rng(3)
    base = digits.data.astype(np.float32) - digits.data.mean(axis=0)
    originals = rng.choice(len(base), 55, replace=False)
    noisy = base[originals] + rng.normal(0, 0.05, (55, 64)).astype(np.float32)
    vectors = np.concatenate([base, noisy[:30]])
    content = np.array([f"c{i}" for i in range(len(vectors))])
    labels = np.concatenate([digits.target, digits.target[originals[:30]]])
    before = find(vectors, content, labels, threshold=0.98)
    assert len(before.near_pairs) >= 30

    keep = np.setdiff1d(np.arange(len(vectors)), rng.choice(len(base), 40, replace=False))
    after_vectors = np.concatenate([vectors[keep], noisy[30:]])
    after_content = np.concatenate([content[keep], [f"n{i}" for i in range(25)]])
    after_labels = np.concatenate([labels[keep], digits.target[originals[30:]]])
    after_labels[:20] = (after_labels[:20] + 1) % 10  # relabelled: same content
    full = find(after_vectors, after_content, after_labels, threshold=0.98)
    incremental = find(
        after_vectors,
        after_content,
        after_labels,
        threshold=0.98,
        previous=Previous(before, content),
    )
    assert incremental.near_pairs.tolist() == full.near_pairs.tolist()
    np.testing.assert_allclose(incremental.near_similarity, full.near_similarity, rtol=1e-6)
    np.testing.assert_array_equal(incremental.outlier_distance, full.outlier_distance)
    # the earlier pairs among unchanged items are kept, not searched again: one planted in the
    # earlier search (items 5 and 6, both kept) comes back, though no search would find it
    import dataclasses

    planted = dataclasses.replace(
        before,
        near_pairs=np.concatenate([before.near_pairs, [[5, 6]]]),
        near_similarity=np.concatenate([before.near_similarity, [0.5]]).astype(np.float32),
    )
    again = find(
        after_vectors,
        after_content,
        after_labels,
        threshold=0.98,
        previous=Previous(planted, content),
    )
    at = {c: i for i, c in enumerate(after_content.tolist())}
    assert [at["c5"], at["c6"]] in again.near_pairs.tolist()
    assert [at["c5"], at["c6"]] not in full.near_pairs.tolist()
