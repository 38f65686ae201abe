"""report.html in a real browser: headless Chromium (Debian's package, which .ci/run installs)."""

import os
import shutil

import pytest
from typer.testing import CliRunner

from torchclf.cli import app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# .ci/run installs Chromium and sets this: there, a missing browser fails instead of skipping
REQUIRED = os.environ.get("TORCHCLF_BROWSER_TESTS") == "required"


def _browser():
    if CHROMIUM is None or not _has_playwright():
        if REQUIRED:
            pytest.fail("the browser test needs Chromium and playwright (.ci/run installs both)")
        pytest.skip("no Chromium or playwright here")
    from playwright.sync_api import sync_playwright

    return sync_playwright()


def _has_playwright():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("width", [1000, 400])  # a laptop, and a phone held upright
def test_the_report_opens_in_chromium_with_every_picture_and_no_error(tmp_path, width):
    manager = _browser()
    result = CliRunner().invoke(app, ["train", "--epochs", "30", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    report = tmp_path / "circles" / "report.html"
    with manager as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(report.as_uri())
            page.screenshot(path=str(tmp_path / f"report-{width}.png"), full_page=True)
            images = page.evaluate(
                "Array.from(document.images, i => [i.alt, i.complete && i.naturalWidth > 0])"
            )
            summary_top = page.evaluate(
                "document.evaluate(\"//h2[text()='Summary']\", document, null, 9, null)"
                ".singleNodeValue.getBoundingClientRect().top"
            )
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
        finally:
            browser.close()
    assert errors == []
    assert len(images) == 5 and all(alt and decoded for alt, decoded in images), images
    assert summary_top < 300  # the summary is the first thing a reader sees
    assert overflow <= 0  # the command and the tables wrap: nothing runs off to the side
    assert (tmp_path / f"report-{width}.png").stat().st_size > 10_000
