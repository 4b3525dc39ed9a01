"""The HTML report in a real browser: offline, no console error, working filters, a screenshot.

Drives Debian's chromium through Playwright (never ``playwright install``: the browser is the
system one). Skips when either is missing.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_report import PIXELS, make_document, with_neighbours

from pytest_labelquality.files import write_text_atomic
from pytest_labelquality.gate import Rule
from pytest_labelquality.report import render_html
from pytest_labelquality.result import (
    CacheUse,
    Canary,
    ClassRow,
    CrossValidation,
    DatasetResult,
    DetectionMethod,
    Estimator,
    Exemplar,
    Gate,
    Histogram,
    ModelUse,
    Noise,
    Preview,
    Reviews,
    RuleFailure,
    RunResult,
    Source,
    SpecRef,
    Suspect,
    Timings,
)

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# 12 suspects: given cat x5 (suggested dog), dog x4 (suggested cat), fox x3 (suggested cat).
PAIRS = [("cat", "dog")] * 5 + [("dog", "cat")] * 4 + [("fox", "cat")] * 3


def make_result(
    name: str = "cats-dogs",
    *,
    classes: tuple[str, ...] = ("cat", "dog", "fox"),
    pairs: list[tuple[str, str]],
    items: int,
    preview: str = "image",
) -> DatasetResult:
    """A result of an exact shape, built with the typed constructors, for tests that drive a
    browser through it: ``pairs`` are its suspects' (given, suggested), most suspect first, ids
    ``item-001`` on; above 10% noise it fails. ``preview``: image, features or text."""
    rate = len(pairs) / items
    per_given = Counter(given for given, _ in pairs)
    size = items // len(classes)
    per_class = tuple(
        ClassRow(c, size, per_given[c], per_given[c] / size, None, True) for c in classes
    )
    failed = (
        (
            RuleFailure(
                Rule.MAX_NOISE_RATE,
                rate,
                0.1,
                None,
                f"estimated label noise {rate:.1%} exceeds max_noise_rate 10.0%",
            ),
        )
        if rate > 0.1
        else ()
    )
    position = {c: i for i, c in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    views = {
        "image": lambda rank: Preview(image=PIXELS),
        "features": lambda rank: Preview(features={f"f{i}": i / 4 for i in range(64)}),
        "text": lambda rank: Preview(text=f"review number {rank}"),
    }
    flagged = []
    for rank, (given, suggested) in enumerate(pairs, start=1):
        matrix[position[given]][position[suggested]] += 1
        flagged.append(
            Suspect(
                rank=rank,
                index=rank * 3,
                id=f"item-{rank:03d}",
                hash=f"{rank:016x}",
                given=given,
                suggested=suggested,
                suggested_prob=0.9,
                score=round(rank / 1000, 6),
                given_prob=0.05,
                preview=views[preview](rank),
            )
        )
    counts = (len(pairs), *[0] * 18, items - len(pairs))
    return DatasetResult(
        name=name,
        spec=SpecRef("data/animals.labelquality.yaml", 7),
        source=Source("data/animals", "image" if preview == "image" else "tabular"),
        items=items,
        classes=classes,
        feature_names=(),
        noise=Noise(
            rate=rate,
            count=len(pairs),
            flagged=len(pairs),
            reviewed=0,
            interval=(rate * 0.8, rate * 1.2),
            method=DetectionMethod("given_vs_rival", "estimate", "off_diagonal"),
            estimators={"off_diagonal": Estimator(len(pairs), rate)},
            band=(rate, rate),
            canary=Canary(injected=0),
        ),
        gate=Gate(0.1, {}, None, None, None, (), failed, passed=not failed),
        trust=None,
        reviews=Reviews({}, (), ()),
        baseline=None,
        per_class=per_class,
        oof_accuracy=0.875,
        flagged=tuple(flagged),
        noise_matrix=tuple(map(tuple, matrix)),
        score_histogram=Histogram(
            tuple(k / 20 for k in range(21)), counts, flagged[-1].score if flagged else None
        ),
        cv=CrossValidation(5, 42, 1),
        warnings=(),
        backend="local",
        model=ModelUse("logistic_regression"),
        versions={"cleanlab": "2.9.0"},
        cache=CacheUse("c0ffee1234", "miss", 0, ".cache", None, (), None),
        timings=Timings(0.5, 0.1, 9.25, 9.85, (1.5, 2.0)),
        below_estimate=(),
    )


def wait_until(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Poll ``expression`` from outside the page until it is true.

    Not ``page.wait_for_function``: after a first false answer it polls with code that the
    report's Content-Security-Policy (no eval) blocks, so it fails whenever the page is slower
    than the first check (a busy machine)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        time.sleep(0.05)


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no chromium binary found (looked for {', '.join(CHROMIUM_NAMES)})")


@dataclass
class Browser:
    """A page of a fresh chromium profile, with what it logged and requested."""

    page: Any
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def open(self, tmp_path: Path, document: RunResult) -> str:
        """Write the report of ``document`` under ``tmp_path`` and load it from file://."""
        path = tmp_path / "report" / "index.html"
        write_text_atomic(path, render_html(document, max_suspects=100))
        url = path.as_uri()
        self.page.goto(url, wait_until="load")
        return url

    def visible(self, gallery: str) -> int:
        return int(self.page.locator(f"{gallery} .suspect:visible").count())

    def other_requests(self, url: str) -> list[str]:
        return [r for r in self.requests if r != url and not r.startswith("data:")]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    binary = chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=binary,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1200, "height": 900},
        )
        context.set_default_timeout(15_000)
        session = Browser(context.pages[0] if context.pages else context.new_page())
        session.page.on(
            "console", lambda m: session.errors.append(m.text) if m.type == "error" else None
        )
        session.page.on("pageerror", lambda error: session.errors.append(str(error)))
        context.on("request", lambda request: session.requests.append(request.url))
        try:
            yield session
        finally:
            context.close()


def test_report_in_chromium(browser: Browser, tmp_path: Path) -> None:
    document = make_document(
        make_result("animals", pairs=PAIRS, items=60),
        make_result("shapes", pairs=[("cat", "fox")] * 2, items=300, preview="features"),
    )
    url = browser.open(tmp_path, document)
    page = browser.page

    assert page.locator("#overall-verdict").inner_text() == "FAIL"
    animals = page.locator("#ds-animals")
    assert animals.locator(".verdict-text").inner_text() == "FAIL"
    assert page.locator("#ds-shapes .verdict-text").inner_text() == "PASS"
    assert browser.visible("#ds-animals-gallery") == 12
    assert browser.visible("#ds-shapes-gallery") == 2
    assert animals.locator("form.filters output").inner_text() == "showing 12 of 12"

    thumb = page.locator("#ds-animals-gallery img.thumb").first
    sizes = thumb.evaluate(
        "img => [img.naturalWidth, img.getBoundingClientRect().width,"
        " getComputedStyle(img).imageRendering, img.complete]"
    )
    assert sizes == [28, 112, "pixelated", True]

    animals.locator("select[name=given]").select_option(label="cat (5)")
    assert browser.visible("#ds-animals-gallery") == 5
    animals.locator("select[name=given]").select_option(label="dog (4)")
    assert browser.visible("#ds-animals-gallery") == 4
    assert animals.locator("form.filters output").inner_text() == "showing 4 of 12"
    animals.locator("select[name=suggested]").select_option(label="dog (5)")
    assert browser.visible("#ds-animals-gallery") == 0
    animals.locator("button[type=reset]").click()
    wait_until(
        page,
        "document.querySelector('#ds-animals form.filters output').textContent"
        " === 'showing 12 of 12'",
    )
    assert browser.visible("#ds-animals-gallery") == 12
    animals.locator("select[name=suggested]").select_option(label="cat (7)")
    assert browser.visible("#ds-animals-gallery") == 7
    assert browser.visible("#ds-shapes-gallery") == 2  # each dataset filters its own gallery

    page.locator('nav a[href="#ds-shapes"]').click()
    assert page.evaluate("location.hash") == "#ds-shapes"

    page.emulate_media(media="print")
    assert not page.locator("#ds-animals form.filters").is_visible()
    assert browser.visible("#ds-animals-gallery") == 12
    page.emulate_media(media="screen")

    page.set_viewport_size({"width": 380, "height": 800})
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0

    page.set_viewport_size({"width": 1200, "height": 900})
    animals.locator("select[name=suggested]").select_option(value="")
    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    assert browser.errors == []
    assert browser.other_requests(url) == []
    assert url in browser.requests


def test_untrusted_content_runs_no_script_in_chromium(browser: Browser, tmp_path: Path) -> None:
    evil = "<img src=x onerror=\"document.title='pwned'\">"
    result = make_result(
        classes=(evil, "dog"), pairs=[(evil, "dog")] * 3, items=300, preview="text"
    )
    first, *rest = result.flagged
    script = Preview(text="<script>document.title='pwned'</script>")
    result = dataclasses.replace(
        result, flagged=(dataclasses.replace(first, preview=script), *rest)
    )
    url = browser.open(tmp_path, make_document(result))
    page = browser.page
    assert page.title() != "pwned"
    assert page.locator("img:not(.thumb)").count() == 0
    assert page.locator("#ds-cats-dogs .snippet").first.inner_text() == (
        "<script>document.title='pwned'</script>"
    )
    assert page.locator("select[name=given] option").nth(1).inner_text() == f"{evil} (3)"
    assert browser.errors == []
    assert browser.other_requests(url) == []


def test_quickdraw_report_in_chromium(
    browser: Browser, tmp_path: Path, quickdraw_dir: Path
) -> None:
    """A report of real drawings: loads offline, shows the verdict and a bounded gallery."""
    from pytest_labelquality.runner import check_dataset
    from pytest_labelquality.spec import load_spec

    spec_path = tmp_path / "qd.labelquality.yaml"
    spec_path.write_text(
        "datasets:\n  - name: quickdraw-cat-dog\n"
        f"    source: {{format: quickdraw, dir: {quickdraw_dir}, classes: [cat, dog],"
        " limit: 600, flip: {rate: 0.1}}\n"
        "    cv: {folds: 3}\n    gate: {max_noise_rate: 0.05}\n"  # the default model
    )
    (spec,) = load_spec(spec_path)
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None)
    url = browser.open(tmp_path, RunResult((result,)))
    page = browser.page
    assert page.locator("#overall-verdict").inner_text() == "FAIL"
    assert browser.visible("#ds-quickdraw-cat-dog-gallery") == min(100, len(result.flagged))
    first = page.locator("#ds-quickdraw-cat-dog-gallery img.thumb").first
    assert first.evaluate("img => [img.naturalWidth, img.complete]") == [28, True]
    page.screenshot(path=str(tmp_path / "quickdraw-report.png"), full_page=False)
    assert browser.errors == []
    assert browser.other_requests(url) == []


def test_a_reviewer_filters_pages_and_builds_a_review_command(
    browser: Browser, tmp_path: Path
) -> None:
    """Heatmap cell, pages, search, an anchor, three cards marked correct: the command the page
    builds runs, and the review file it writes matches the YAML the page shows."""
    import os
    import subprocess
    import sys

    import yaml

    from pytest_labelquality.accept import parse_command
    from pytest_labelquality.outputs import write_json
    from pytest_labelquality.sources import review_hash

    spec = tmp_path / "data" / "animals.labelquality.yaml"
    spec.parent.mkdir()
    spec.write_text("datasets: []\n")
    result = make_result("animals", pairs=PAIRS, items=60)
    flagged = tuple(
        dataclasses.replace(
            s, content_hash=f"{s.rank:016x}", hash=review_hash(f"{s.rank:016x}", s.given)
        )
        for s in result.flagged
    )
    spec_ref = dataclasses.replace(result.spec, file=str(spec))
    result = dataclasses.replace(result, spec=spec_ref, flagged=flagged)
    document = RunResult((result,))
    results = tmp_path / "label-quality-report" / "label-quality.json"
    write_json(results, document.to_json())
    html = tmp_path / "label-quality-report" / "index.html"
    write_text_atomic(
        html, render_html(document, max_suspects=5, results_path=results, root=tmp_path)
    )
    page = browser.page
    page.goto(html.as_uri(), wait_until="load")
    animals = page.locator("#ds-animals")
    pager = animals.locator("nav.pager output")
    assert pager.inner_text() == "page 1 of 3 (1-5)"
    assert browser.visible("#ds-animals-gallery") == 5

    animals.locator('table.matrix td[data-given="0"][data-suggested="1"]').click()  # cat -> dog
    assert animals.locator("form.filters output").inner_text() == "showing 5 of 12"
    assert not animals.locator("nav.pager").is_visible()  # one page
    givens = animals.locator("#ds-animals-gallery .suspect:visible .given").all_inner_texts()
    assert givens == ["cat"] * 5

    animals.locator("button[type=reset]").click()
    wait_until(
        page,
        "document.querySelector('#ds-animals form.filters output').textContent"
        " === 'showing 12 of 12'",
    )
    animals.locator('nav.pager button[data-step="1"]').click()
    assert pager.inner_text() == "page 2 of 3 (6-10)"
    cards = animals.locator("#ds-animals-gallery .suspect:visible")
    assert [int(r) for r in cards.evaluate_all("cs => cs.map(c => c.dataset.rank)")] == [
        6, 7, 8, 9, 10
    ]  # fmt: skip
    animals.locator(".review-panel input[name=by]").fill("alice")
    assert not animals.locator(".review-panel .accept-comment").is_visible()
    for k in range(3):
        cards.nth(k).locator('button[data-decision="correct"]').click()
    assert (
        cards.nth(0).locator('button[data-decision="correct"]').get_attribute("aria-pressed")
        == "true"
    )
    command = animals.locator(".review-panel .review-command").inner_text()
    assert command == (
        "python -m pytest_labelquality.reviews add data/animals.labelquality.yaml animals"
        " item-006 item-007 item-008 --decision correct --by alice"
        " --results label-quality-report/label-quality.json"
    )
    shown_yaml = yaml.safe_load(animals.locator(".review-yaml").inner_text())
    # on the pull request, the same three accepted by a maintainer's comment
    comment = animals.locator(".review-panel .accept-comment").inner_text()
    assert comment == "/label-quality accept item-006 item-007 item-008"
    assert parse_command(comment) == ["item-006", "item-007", "item-008"]
    cards.nth(3).locator('button[data-decision="ambiguous"]').click()  # not accepted by one
    assert animals.locator(".review-panel .accept-comment").inner_text() == comment
    cards.nth(3).locator('button[data-decision="ambiguous"]').click()

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    written = yaml.safe_load((spec.parent / "animals.labelquality.reviews.yaml").read_text())
    by_id = {s.id: s for s in result.flagged}
    assert [(e["id"], e["hash"], e["decision"], e["by"]) for e in written] == [
        (i, by_id[i].hash, "correct", "alice") for i in ("item-006", "item-007", "item-008")
    ]
    assert shown_yaml == written  # the YAML lines say the same as the command wrote

    animals.locator("input[name=search]").fill("item-01")
    assert animals.locator("form.filters output").inner_text() == "showing 3 of 12"
    page.evaluate("location.hash = '#ds-animals-item-2'")  # an anchor outside the filter
    wait_until(page, "!document.getElementById('ds-animals-item-2').hidden")
    assert animals.locator("form.filters output").inner_text() == "showing 12 of 12"
    assert browser.errors == []
    assert browser.other_requests(html.as_uri()) == []


def test_text_search_filters_suspects_in_chromium(browser: Browser, tmp_path: Path) -> None:
    result = make_result("news", pairs=PAIRS, items=60, preview="text")
    first, *rest = result.flagged
    whole_text = Preview(text="Opening words. " + "middle " * 100 + "THE END")
    result = dataclasses.replace(
        result,
        source=dataclasses.replace(result.source, kind="text"),
        flagged=(dataclasses.replace(first, preview=whole_text), *rest),
    )
    url = browser.open(tmp_path, make_document(result))
    page = browser.page
    search = page.locator("#ds-news form.filters input[name=text]")
    search.fill("Number 1")  # case-insensitive: review number 10, 11 and 12
    assert browser.visible("#ds-news-gallery") == 3
    search.fill("the end")  # found in the whole text, beyond the snippet
    assert browser.visible("#ds-news-gallery") == 1
    first = page.locator("#ds-news-gallery .suspect").first
    assert "THE END" not in first.locator("blockquote").first.inner_text()
    whole = first.locator("details.full-text")
    assert whole.evaluate("d => d.open") is False  # the whole text on demand
    whole.locator("summary").click()  # a reviewer clicks it with the mouse
    assert "THE END" in whole.inner_text()
    page.locator("#ds-news form.filters button[type=reset]").click()
    wait_until(page, "document.querySelectorAll('#ds-news-gallery .suspect[hidden]').length == 0")
    assert browser.visible("#ds-news-gallery") == 12
    assert browser.errors == []
    assert browser.other_requests(url) == []


PORTABLE_SPEC = """\
datasets:
  - name: digits
    source: {format: sklearn, name: digits, flip: {rate: 0.05, seed: 0}}
    model: {name: logistic_regression}
    cv: {folds: 3}
    gate: {max_noise_rate: 0.5}
"""


def test_a_ci_report_names_no_runner_path_and_its_review_command_works_in_another_checkout(
    browser: Browser, tmp_path: Path
) -> None:
    """The gate runs in one checkout (a CI runner's); its report, downloaded into a reviewer's
    checkout at another absolute path, builds a command that works there unchanged."""
    import json
    import os
    import subprocess
    import sys

    runner = tmp_path / "home" / "runner" / "work" / "repo"
    (runner / "data").mkdir(parents=True)
    (runner / "data" / "digits.labelquality.yaml").write_text(PORTABLE_SPEC)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    gate = [sys.executable, "-m", "pytest", "--label-quality", "-p", "no:cacheprovider"]
    gate += ["--label-quality-markdown", "label-quality-report/summary.md", "data"]
    ran = subprocess.run(gate, cwd=runner, env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout[-3000:]
    report = runner / "label-quality-report"
    for written in (*report.glob("*.json"), *report.glob("*.html"), *report.glob("*.md")):
        text = written.read_text()
        assert str(runner) not in text, written.name
        assert str(tmp_path) not in text, written.name
    result = json.loads((report / "label-quality.json").read_text())["datasets"][0]
    assert result["spec"]["file"] == "data/digits.labelquality.yaml"
    assert result["cache"]["dir"] == ".pytest_cache/d/label-quality"

    reviewer = tmp_path / "reviewer" / "checkouts" / "repo-clone"
    reviewer.mkdir(parents=True)
    shutil.copytree(runner / "data", reviewer / "data")
    shutil.copytree(report, reviewer / "label-quality-report")  # the artefact, unzipped
    page = browser.page
    page.goto((reviewer / "label-quality-report" / "index.html").as_uri(), wait_until="load")
    digits = page.locator("#ds-digits")
    digits.locator(".review-panel input[name=by]").fill("alice")
    first = digits.locator(".suspect:visible").nth(0)
    first_id = first.get_attribute("data-id")
    first.locator('button[data-decision="correct"]').click()
    command = digits.locator(".review-panel .review-command").inner_text()
    assert command.startswith("python -m pytest_labelquality.reviews add")
    assert " data/digits.labelquality.yaml digits " in command
    assert "--results label-quality-report/label-quality.json" in command
    added = subprocess.run(
        ["bash", "-c", command], cwd=reviewer, env=env, capture_output=True, text=True
    )
    assert added.returncode == 0, added.stderr
    import yaml

    reviews = yaml.safe_load((reviewer / "data" / "digits.labelquality.reviews.yaml").read_text())
    assert [(r["id"], r["decision"], r["by"]) for r in reviews] == [(first_id, "correct", "alice")]
    # the reviewer's own run counts the item as reviewed
    again = subprocess.run(gate, cwd=reviewer, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-3000:]
    checked = json.loads((reviewer / "label-quality-report" / "label-quality.json").read_text())
    assert checked["datasets"][0]["reviews"]["decisions"] == {first_id: "correct"}
    assert browser.errors == []


def test_neighbours_appear_beside_each_card_as_it_is_shown(
    browser: Browser, tmp_path: Path
) -> None:
    result = with_neighbours(make_result("animals", pairs=PAIRS, items=60))
    below = dataclasses.replace(result.flagged[-1], rank=13, id="item-013", below_estimate=True)
    result = dataclasses.replace(
        result,
        below_estimate=(below,),
        exemplars={"dog": (Exemplar("d", 0.9, Preview(image=PIXELS)),)},
    )
    texts = with_neighbours(make_result("news", pairs=PAIRS[:2], items=60, preview="text"))
    quoted_text = Preview(text="<mark>a neighbour's text</mark>")
    texts = dataclasses.replace(
        texts,
        source=dataclasses.replace(texts.source, kind="text"),
        neighbour_previews=dict.fromkeys(texts.neighbour_previews or {}, quoted_text),
    )
    document = make_document(result, texts)
    html = tmp_path / "report.html"
    write_text_atomic(html, render_html(document, max_suspects=5))
    page = browser.page
    page.goto(html.as_uri(), wait_until="load")
    gallery = "#ds-animals-gallery .suspect"
    filled = f"{gallery}:visible .neighbour img"
    assert page.locator(filled).count() == 5 * 4  # 2 of each class, on each card of page 1
    assert page.locator(f"{gallery}[hidden] .neighbour img").count() == 0  # not yet shown
    assert page.locator(f"{gallery} .examples").count() == 0  # the neighbours replace them
    first = page.locator(f"{gallery}:visible .neighbour-row").first
    assert first.inner_text().startswith("nearest dog:")
    assert first.locator("img").first.get_attribute("src") == PIXELS
    page.locator('#ds-animals nav.pager button[data-step="1"]').click()
    assert page.locator(filled).count() == 5 * 4
    assert page.locator(f"{gallery} .neighbour img").count() == 10 * 4  # pages 1 and 2
    assert page.locator("#ds-animals .below-gallery .neighbour img").count() == 4
    quoted = page.locator("#ds-news-gallery .suspect:visible .neighbour q")
    assert quoted.count() == 2 * 4
    assert quoted.first.inner_text() == "<mark>a neighbour's text</mark>"
    assert page.locator("mark").count() == 0
    assert browser.errors == []
    assert browser.other_requests(html.as_uri()) == []
