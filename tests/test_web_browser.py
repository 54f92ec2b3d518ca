"""End to end in a real browser: `imgcap serve` over a database indexed with the tiny model,
driven by Playwright with the system's headless Chromium (Debian package `chromium`; nothing is
downloaded). Types a query, sees thumbnails load, opens a photo, edits its caption, searches for
the new words and finds it first. Screenshots go to the test's tmp dir (printed on failure).

On a machine without the browser the test is skipped with the package to install; in CI
(`CI` set, as .ci/run does) a missing browser is a failure, never a skip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from test_cli_serve import start

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Real words for the other photos (set through the JSON API, as a script would), so the
# screenshot reads like a library rather than the tiny model's random tokens.
CAPTIONS = {
    "astronaut.jpg": "an astronaut in a white spacesuit in front of a flag",
    "camera.jpg": "a man with a camera on a tripod in a field",
    "chelsea.jpg": "a tabby cat looking to the side",
    "coffee.jpg": "a cup of coffee on a saucer",
}
# A function (not a bare expression): Playwright would eval() a bare one, which the page's CSP
# (script-src 'self', no 'unsafe-eval') forbids, as it should.
ALL_LOADED = (
    "() => [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)"
)
NEW = "a red rocket on the launch pad at dusk"


def _browser_or_skip():
    missing = []
    if not os.path.exists(CHROMIUM):
        missing.append("the Chromium browser (Debian/Ubuntu: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright for Python (pip install -e '.[test]')")
    if missing:
        message = "needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {message}")
        pytest.skip(message)


def _post_caption(url: str, file_id: int, caption: str) -> dict:
    req = urllib.request.Request(
        f"{url}api/photo/{file_id}/caption",
        data=json.dumps({"caption": caption}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_search_open_edit_and_find_in_a_real_browser(tmp_path, tiny_model_dir):
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    photos = tmp_path / "photos"
    shutil.copytree(SAMPLES, photos, ignore=shutil.ignore_patterns("*.md"))
    db = tmp_path / "lib.db"
    imgcap = str(Path(sys.executable).with_name("imgcap"))
    index = subprocess.run(
        [imgcap, "index", str(photos), "--db", str(db), "--model", str(tiny_model_dir),
         "--device", "cpu", "--workers", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert index.returncode == 0, index.stderr
    shots = tmp_path / "screenshots"
    shots.mkdir()
    proc, url = start(db)
    try:
        with urllib.request.urlopen(f"{url}api/search?q=photo&mode=image&n=50", timeout=60) as r:
            ids = {Path(h["path"]).name: h["id"] for h in json.loads(r.read())["hits"]}
        assert len(ids) == 5
        for name, caption in CAPTIONS.items():
            assert _post_caption(url, ids[name], caption)["caption_source"] == "user"

        with sync_playwright() as p:
            # A new empty profile (Playwright passes it as --user-data-dir).
            browser = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
                viewport={"width": 1200, "height": 800},
            )
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(url)
            expect(page.locator("h1")).to_contain_text("Search your photos")

            # 1. Type a query; thumbnails load (every <img> decoded, naturalWidth > 0).
            page.fill("input[name=q]", "a cup of coffee")
            page.press("input[name=q]", "Enter")
            cards = page.locator(".card")
            expect(cards).to_have_count(5)
            page.wait_for_function(ALL_LOADED)
            assert "q=a+cup+of+coffee" in page.url  # the search is bookmarkable
            expect(cards.first.locator(".caption")).to_have_text(CAPTIONS["coffee.jpg"])
            expect(cards.first.locator("mark", has_text="coffee")).to_have_count(1)
            expect(cards.first.locator(".chip").first).to_contain_text("img ")
            page.screenshot(path=str(shots / "1-search.png"))

            # 2. Open a photo: the large preview loads.
            page.click(f"a[href='/photo/{ids['rocket.jpg']}']")
            page.wait_for_function(
                "() => document.getElementById('preview').complete"
                " && document.getElementById('preview').naturalWidth > 0"
            )
            expect(page.locator("#path")).to_contain_text("rocket.jpg")

            # 3. Edit its caption through the page.
            page.click("#edit-caption")
            page.fill("#caption-text", NEW)
            page.click("#save-caption")
            expect(page.locator("#caption")).to_have_text(NEW)
            expect(page.locator("#caption-source")).to_contain_text("Your caption")
            page.screenshot(path=str(shots / "2-photo-edited.png"))

            # 4. Search for the new words: the edited photo comes first.
            page.fill("input[name=q]", "rocket launch pad")
            page.press("input[name=q]", "Enter")
            first = page.locator(".card").first
            expect(first.locator("a")).to_have_attribute("href", f"/photo/{ids['rocket.jpg']}")
            expect(first.locator(".caption")).to_have_text(NEW)
            expect(first.locator(".edited")).to_be_visible()
            page.wait_for_function(ALL_LOADED)
            page.screenshot(path=str(shots / "3-found-first.png"))

            # 5. Pages of two photos: scrolling loads the rest (infinite scroll), no repeats.
            page.goto(f"{url}?q=photo&mode=image&n=2")
            served = page.request.get(f"{url}?q=photo&mode=image&n=2").text()
            assert served.count('class="card"') == 2 and 'id="more"' in served
            for _ in range(10):
                page.mouse.wheel(0, 5000)
                if page.locator(".card").count() == 5:
                    break
                page.wait_for_timeout(200)
            expect(page.locator(".card")).to_have_count(5)
            expect(page.locator("#more")).to_have_count(0)
            hrefs = page.locator(".card > a").evaluate_all("as => as.map(a => a.pathname)")
            assert sorted(hrefs) == sorted(f"/photo/{i}" for i in ids.values())
            page.wait_for_function(ALL_LOADED)
            browser.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    print(f"screenshots: {shots}")
    assert len(list(shots.glob("*.png"))) == 3
