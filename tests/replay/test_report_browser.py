"""The report renders in a real headless browser: images decode, no errors, no network, panels present.

Needs Chromium and Playwright, which the project does not install: CI installs Debian ``chromium``
(/usr/bin/chromium) and ``pip install playwright``. Without them the test skips (it never downloads a
browser). Playwright's own downloaded Chromium is used when present and /usr/bin/chromium is not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.sim.replay.runner import ReplayResult

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")

SYSTEM_CHROMIUM = Path("/usr/bin/chromium")


def test_report_renders_in_headless_chromium(sample_run: ReplayResult, tmp_path: Path) -> None:
    report = sample_run.out / "report.html"
    with sync_api.sync_playwright() as playwright:
        try:
            if SYSTEM_CHROMIUM.exists():
                browser = playwright.chromium.launch(executable_path=str(SYSTEM_CHROMIUM), args=["--no-sandbox"])
            else:
                browser = playwright.chromium.launch(args=["--no-sandbox"])
        except sync_api.Error as exc:
            pytest.skip(f"no Chromium for playwright ({SYSTEM_CHROMIUM} absent): {exc}")
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            assert page.title() == "bastion replay — binance-tick-sample"
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
            assert len(images) >= 6
            assert all(complete and width > 300 and height > 100 for complete, width, height in images), images
            assert page.locator("section h2", has_text="Index vs each source").count() == 1
            assert page.locator("section h2", has_text="Equity shortfall").count() == 1
            assert page.locator("table tr").count() >= 15
            assert page.locator("section h2", has_text="Liquidations, ADL, funding").count() == 1
            assert page.locator("div.na").count() == 0  # every risk-engine panel is live
            assert not errors, errors
            assert all(url.startswith(("file:", "data:")) for url in requests), requests
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            assert (tmp_path / "report.png").stat().st_size > 10_000
        finally:
            browser.close()
