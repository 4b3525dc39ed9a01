"""The HTML report in a real browser: offline, no console error, working filters, a screenshot.

Drives Debian's chromium through Playwright (never ``playwright install``: the browser is the
system one). Skips when either is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_report import make_document, make_result

from pytest_labelquality.report import render_html, write_text_atomic

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


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no chromium binary found (looked for {', '.join(CHROMIUM_NAMES)})")


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    """A page of a fresh chromium profile that records console errors and every request."""
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
        page = context.pages[0] if context.pages else context.new_page()
        page.errors = []
        page.requests = []
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        context.on("request", lambda request: page.requests.append(request.url))
        try:
            yield page
        finally:
            context.close()


def open_report(page: Any, tmp_path: Path, document: dict[str, Any]) -> str:
    path = tmp_path / "report" / "index.html"
    write_text_atomic(path, render_html(document, max_suspects=100))
    url = path.as_uri()
    page.goto(url, wait_until="load")
    return url


def visible(page: Any, selector: str) -> int:
    return int(page.locator(f"{selector} .suspect:visible").count())


def test_report_in_chromium(page: Any, tmp_path: Path) -> None:
    document = make_document(
        make_result("animals", pairs=PAIRS, items=60),
        make_result("shapes", pairs=[("cat", "fox")] * 2, preview="features"),
    )
    url = open_report(page, tmp_path, document)

    assert page.locator("#overall-verdict").inner_text() == "FAIL"
    animals = page.locator("#ds-animals")
    assert animals.locator(".verdict-text").inner_text() == "FAIL"
    assert page.locator("#ds-shapes .verdict-text").inner_text() == "PASS"
    assert visible(page, "#ds-animals-gallery") == 12
    assert visible(page, "#ds-shapes-gallery") == 2
    assert animals.locator("form.filters output").inner_text() == "showing 12 of 12"

    thumb = page.locator("#ds-animals-gallery img.thumb").first
    sizes = thumb.evaluate(
        "img => [img.naturalWidth, img.getBoundingClientRect().width,"
        " getComputedStyle(img).imageRendering, img.complete]"
    )
    assert sizes == [28, 112, "pixelated", True]

    animals.locator("select[name=given]").select_option(label="cat (5)")
    assert visible(page, "#ds-animals-gallery") == 5
    animals.locator("select[name=given]").select_option(label="dog (4)")
    assert visible(page, "#ds-animals-gallery") == 4
    assert animals.locator("form.filters output").inner_text() == "showing 4 of 12"
    animals.locator("select[name=suggested]").select_option(label="dog (5)")
    assert visible(page, "#ds-animals-gallery") == 0
    animals.locator("button[type=reset]").click()
    page.wait_for_function(
        "document.querySelector('#ds-animals form.filters output').textContent"
        " === 'showing 12 of 12'"
    )
    assert visible(page, "#ds-animals-gallery") == 12
    animals.locator("select[name=suggested]").select_option(label="cat (7)")
    assert visible(page, "#ds-animals-gallery") == 7
    assert visible(page, "#ds-shapes-gallery") == 2  # each dataset filters its own gallery

    page.locator('nav a[href="#ds-shapes"]').click()
    assert page.evaluate("location.hash") == "#ds-shapes"

    page.emulate_media(media="print")
    assert not page.locator("#ds-animals form.filters").is_visible()
    assert visible(page, "#ds-animals-gallery") == 12
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

    assert page.errors == []
    others = [r for r in page.requests if r != url and not r.startswith("data:")]
    assert others == []
    assert url in page.requests


def test_untrusted_content_runs_no_script_in_chromium(page: Any, tmp_path: Path) -> None:
    evil = "<img src=x onerror=\"document.title='pwned'\">"
    result = make_result(classes=(evil, "dog"), pairs=[(evil, "dog")] * 3, preview="text")
    result["flagged"][0]["preview"] = {"text": "<script>document.title='pwned'</script>"}
    url = open_report(page, tmp_path, make_document(result))
    assert page.title() != "pwned"
    assert page.locator("img:not(.thumb)").count() == 0
    assert page.locator("#ds-cats-dogs .snippet").first.inner_text() == (
        "<script>document.title='pwned'</script>"
    )
    assert page.locator("select[name=given] option").nth(1).inner_text() == f"{evil} (3)"
    assert page.errors == []
    assert [r for r in page.requests if r != url and not r.startswith("data:")] == []
