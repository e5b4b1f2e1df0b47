"""A real browser: headless Chromium (Playwright) loads the demo page with a fixture WAV as its
microphone, and the answer appears. Skips when Chromium or Playwright is missing.

Set RETAIL_ASSISTANT_SCREENSHOT=docs/screenshot.png to save the page (how the committed
screenshot is made: scripts/screenshot.sh).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from ws_harness import fixture_audio

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
SR = 16_000


def fake_microphone(path: Path) -> Path:
    """English then Spanish query with pauses; Chromium loops the file as the microphone."""
    gap = np.zeros(int(1.5 * SR), dtype=np.float32)
    en, es = fixture_audio("en_02_huggies_size"), fixture_audio("es_01_huggies")
    sf.write(path, np.concatenate([gap, en, gap, es, gap, gap, gap]), SR, subtype="PCM_16")
    return path


def test_page_answers_from_the_microphone(e2e_server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    wav = fake_microphone(tmp_path / "mic.wav")
    args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--no-sandbox",
        "--headless",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
    ]
    url = f"http://127.0.0.1:{e2e_server.port}/"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("document.querySelectorAll('#store option').length > 1")
            page.click("#mic")
            page.wait_for_selector("#status[data-state=live]", timeout=30_000)
            # Both queries answered: an English and a Spanish card, each with an answer.
            page.wait_for_function(
                """() => {
                  const langs = [...document.querySelectorAll('.result')]
                    .filter((c) => c.querySelector('.answer-text'))
                    .map((c) => c.querySelector('.lang').textContent);
                  return langs.includes('EN') && langs.includes('ES');
                }""",
                timeout=240_000,
            )
            page.click("#mic")  # stop: the session ends cleanly
            page.wait_for_selector("#status[data-state=idle]", timeout=120_000)
            cards = [page.locator(".result").nth(i) for i in range(page.locator(".result").count())]
            by_lang = {c.locator(".lang").inner_text(): c for c in reversed(cards)}  # first of each
            assert by_lang["EN"].locator(".intent").get_attribute("data-intent") == "check_stock"
            assert by_lang["ES"].locator(".intent").get_attribute("data-intent") == "find_product"
            assert any(c.locator("mark.ent").count() for c in cards)  # entities highlighted
            aisles = page.locator(".result .products td.big")
            assert aisles.count() and aisles.first.inner_text().strip() not in ("", "—")
            assert by_lang["EN"].locator(".timings .timing.total").count() == 1
            assert not errors, errors
            shot = os.environ.get("RETAIL_ASSISTANT_SCREENSHOT")
            page.screenshot(path=shot or str(tmp_path / "page.png"), full_page=True)
            # The interface in Spanish, result cards included.
            page.click("#ui-es")
            assert page.locator("h1").inner_text() == "Asistente de tienda"
            assert by_lang["EN"].locator(".intent").inner_text().startswith("Existencias")
            # Usable on a phone: nothing wider than the screen.
            page.set_viewport_size({"width": 390, "height": 844})
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1
        finally:
            browser.close()
