"""A video's page in a real browser (Playwright + the system's headless Chromium, as
tests/test_web_browser.py): the player loads the H.264 video from the gallery and starts at the
matched moment, clicking a moment's caption seeks there, and a video in a codec browsers don't
play shows its still. Skipped without the browser, except in CI (`CI` set), where that fails."""

from __future__ import annotations

import json
import urllib.request

from test_cli_serve import start
from test_web_browser import _browser_or_skip, launch
from video_gallery import make_video_gallery

# Functions, not bare expressions: the page's CSP forbids eval (see test_web_browser.py).
PLAYER_READY = "() => { const v = document.getElementById('player'); return v.readyState >= 1; }"
STILL_LOADED = (
    "() => { const i = document.getElementById('preview'); return i.complete && i.naturalWidth; }"
)


def test_video_page_plays_from_the_matched_moment(tmp_path):
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    _, db = make_video_gallery(tmp_path)
    proc, url = start(db)
    try:
        with urllib.request.urlopen(f"{url}api/search?q=video&mode=image&n=50", timeout=60) as r:
            ids = {h["path"].rsplit("/", 1)[1]: h["id"] for h in json.loads(r.read())["hits"]}
        with sync_playwright() as p:
            browser = launch(p, tmp_path)
            page = browser.new_page()
            page.set_default_timeout(30_000)
            failed = []  # every request the pages make succeeds (the favicon aside)
            page.on(
                "response",
                lambda r: (
                    failed.append(r.url)
                    if r.status >= 400 and not r.url.endswith("/favicon.ico")
                    else None
                ),
            )

            # Opened from a search hit at 0:02: the player starts there, that moment marked.
            page.goto(f"{url}photo/{ids['beach.mp4']}?t=2.0")
            page.wait_for_function(PLAYER_READY)
            assert page.eval_on_selector("#player", "v => v.duration") > 5
            assert abs(page.eval_on_selector("#player", "v => v.currentTime") - 2.0) < 0.3
            expect(page.locator("#keyframes li")).to_have_count(3)
            expect(page.locator("#keyframes li.matched")).to_have_text(
                "00:02 a birthday cake with candles"
            )
            page.screenshot(path=str(tmp_path / "video.png"))

            # Clicking a moment seeks the player (no page load).
            page.click("#keyframes a[data-at='4.0']")
            page.wait_for_function(
                "() => Math.abs(document.getElementById('player').currentTime - 4) < 0.5"
            )
            assert page.url.endswith("?t=2.0")
            expect(page.locator("#keyframes li.matched")).to_contain_text("people dancing")

            # MPEG-4 Part 2: no player, the still loads and the page says why.
            page.goto(f"{url}photo/{ids['old.mp4']}")
            expect(page.locator("#player")).to_have_count(0)
            page.wait_for_function(STILL_LOADED)
            expect(page.locator("#no-playback")).to_contain_text("mpeg4")
            browser.close()
        assert failed == []
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
