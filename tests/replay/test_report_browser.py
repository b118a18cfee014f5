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


def _launch(playwright: object) -> object:
    try:
        if SYSTEM_CHROMIUM.exists():
            return playwright.chromium.launch(executable_path=str(SYSTEM_CHROMIUM),  # type: ignore[attr-defined]
                                              args=["--headless", "--no-sandbox", "--disable-gpu"])
        return playwright.chromium.launch(args=["--no-sandbox"])  # type: ignore[attr-defined]
    except sync_api.Error as exc:
        pytest.skip(f"no Chromium for playwright ({SYSTEM_CHROMIUM} absent): {exc}")


def _open(browser: object, report: Path) -> tuple[object, list[str], list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    return page, errors, requests


def _images(page: object) -> dict[str, tuple[bool, int, int]]:
    rows = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth, e.naturalHeight])")
    return {alt: (complete, width, height) for alt, complete, width, height in rows}


PANELS = ("Index vs each source", "Equity shortfall", "Insurance fund", "Liquidations, ADL and funding over time",
          "Funding rate", "Circuit breakers and market state")


def test_report_renders_in_headless_chromium(sample_run: ReplayResult, tmp_path: Path) -> None:
    report = sample_run.out / "report.html"
    with sync_api.sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page, errors, requests = _open(browser, report)
            assert page.title() == "bastion replay — binance-tick-sample"
            images = _images(page)
            assert len(images) >= 9
            assert all(complete and width > 300 and height > 100 for complete, width, height in images.values()), images
            assert {"insurance fund", "risk events", "market state timeline"} <= set(images)
            for title in PANELS:
                assert page.locator("section h2", has_text=title).count() == 1, title
            assert page.locator("table tr").count() >= 20
            assert page.locator("div.na").count() == 0 and "not yet available" not in page.content()
            assert page.locator("p.empty", has_text="no funding settlement").count() == 1  # 60 s: no settlement
            assert not errors, errors
            assert all(url.startswith(("file:", "data:")) for url in requests), requests
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            assert (tmp_path / "report.png").stat().st_size > 10_000
        finally:
            browser.close()


def test_breaker_timeline_and_funding_plots_render(sample_run: ReplayResult, tmp_path: Path) -> None:
    """The same sample with a timeline holding every kind of transition and a few funding settlements:
    the state-timeline and funding-rate images decode in the browser, and the breaker figures show."""
    import dataclasses

    from bastion.sim.replay.report import write_report
    from bastion.sim.replay.scenario import resolve_scenario
    from bastion.sim.replay.series import Timeline

    timeline = Timeline(sample_run.summary["start_ns"], 1)
    timeline.states = [(5.0, 0, 4, 2), (35.0, 4, 0, 5), (40.0, 0, 3, 3), (45.0, 3, 4, 4), (50.0, 4, 0, 5)]
    timeline.funding = [(10.0, 100_000, 20_000), (30.0, -250_000, -300_000), (50.0, 400_000, 350_000)]
    timeline.modes = [(2.0, 1, 10**9), (52.0, 0, 0)]  # batch auctions from 2 s to 52 s
    timeline.clearings = [(3.0 + i, 618_000 + 10 * i, 5) for i in range(40)]
    timeline.clearings_total, timeline.clearing_volume_lots = 40, 200
    summary = dict(sample_run.summary, breakers={**sample_run.summary["breakers"], **timeline.figures(
        sample_run.summary["end_ns"]), "integrity": {"band_ppm": 10_000, "velocity_threshold_ticks": 3_000,
                                                     "luld_halt_ns": 300 * 10**9}},
                   matching={**sample_run.summary["matching"], **timeline.matching_figures(sample_run.summary["end_ns"]),
                             "fills_without_aggressor": 80, "boundary_heartbeats": 40})
    result = dataclasses.replace(sample_run, summary=summary, timeline=timeline)
    path = tmp_path / "report.html"
    write_report(result, resolve_scenario(None), path)
    with sync_api.sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page, errors, _ = _open(browser, path)
            images = _images(page)
            assert {"funding rate", "market state timeline", "mark and last price"} <= set(images)
            for alt in ("funding rate", "market state timeline", "mark and last price"):
                complete, width, height = images[alt]
                assert complete and width > 300 and height > 100, (alt, images[alt])
            text = page.locator("section", has_text="Circuit breakers and market state").inner_text()
            assert "band_ppm = 10,000" in text and "luld_halt = 300 s" in text
            assert "ACTIVE->AUCTION (velocity) × 1" in text
            assert "HALTED->AUCTION (scheduled) × 1" in text and "AUCTION 35 s, HALTED 5 s" in text  # 5-35 and 45-50; 40-45
            assert page.locator("p.empty", has_text="no funding settlement").count() == 0
            assert ("matching mode: BATCH τ = 1 s from 2 s, CONTINUOUS from 52 s; 40 clearings (0.200 BTC), "
                    "clearing prices 61,800.0 .. 61,839.0 USD") in text
            assert page.locator("section h2", has_text="Mark and last price, batch clearing prices").count() == 1
            assert not errors, errors
        finally:
            browser.close()
