"""End to end in a real browser: `imgcap serve` over a database indexed with the tiny model,
driven by Playwright with the system's headless Chromium (Debian package `chromium`; nothing is
downloaded). Opens on the timeline (photos by month, rows of one height keeping each photo's
shape), types a query, sees thumbnails load, opens a photo, edits its caption, searches for the
new words and finds it first; goes in by a folder and by a tag; then the phone layout (three
photos a row, a compact header). No request of any page is a 404 (the favicon).

Screenshots go to the test's tmp dir (printed on failure); with GALLERY_SCREENSHOTS=DIR the
README's (the desktop timeline, the phone) are also written to DIR:
`GALLERY_SCREENSHOTS=docs/images pytest tests/test_web_browser.py`.

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
# The samples as a small library: folder, and the date written into the copy's EXIF (None: the
# sample's own, chelsea's 2012-05-19; "": none).
LIBRARY = {
    "rocket.jpg": ("2019/Florida trip", "2019:06:21 19:30:00"),
    "astronaut.jpg": ("2019/Florida trip", "2019:06:20 11:00:00"),
    "coffee.jpg": ("home", "2019:06:02 08:15:00"),
    "chelsea.jpg": ("home", None),
    "camera.jpg": ("phone", ""),
}
TAG_SIDECAR = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
    ' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""'
    ' xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag><rdf:li>Chelsea</rdf:li>'
    "</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"
)
PHONE = {"width": 390, "height": 844}
# Each card's box and its image's: (top, left, width, height, image width, image height).
BOXES = """() => [...document.querySelectorAll('#results .card')].map(c => {
  const b = c.getBoundingClientRect(), i = c.querySelector('img').getBoundingClientRect();
  return [b.top, b.left, b.width, b.height, i.width, i.height];
})"""


def launch(playwright, tmp_path):
    """Debian's chromium, headless, with a new empty profile (Playwright passes it as
    --user-data-dir) and a desktop-sized window."""
    return playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=FLAGS,
        viewport={"width": 1200, "height": 800},
    )


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
    _library(photos)
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
            browser = launch(p, tmp_path)
            page = browser.new_page()
            page.set_default_timeout(30_000)
            missing = []
            browser.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
            page.goto(url)
            expect(page.locator("h1")).to_contain_text("Your photos")

            # 1. Type a query; thumbnails load (every <img> decoded, naturalWidth > 0).
            page.fill("input[name=q]", "a cup of coffee")
            page.press("input[name=q]", "Enter")
            cards = page.locator(".card")
            expect(cards).to_have_count(5)
            page.wait_for_function(ALL_LOADED)
            assert "q=a+cup+of+coffee" in page.url  # the search is bookmarkable
            expect(cards.first.locator(".caption")).to_have_text(CAPTIONS["coffee.jpg"])
            expect(cards.first.locator("mark", has_text="coffee")).to_have_count(1)
            expect(cards.first.locator(".chip.looks")).to_have_text("looks like “a cup of coffee”")
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

            _timeline(page, url, shots)  # now every photo has real words
            _ways_in(page, url)
            _phone(page, url, shots)
            browser.close()
            assert missing == []  # every page has its icon
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    print(f"screenshots: {shots}")
    assert len(list(shots.glob("*.png"))) == 5
    _publish(shots, os.environ.get("GALLERY_SCREENSHOTS"))


def _library(photos: Path) -> None:
    """The samples in folders, with dates, one tagged (LIBRARY, TAG_SIDECAR)."""
    from PIL import Image

    for name, (folder, taken) in LIBRARY.items():
        dest = photos / folder / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if taken:
            with Image.open(SAMPLES / name) as im:
                exif = im.getexif()
                exif[0x0132] = taken  # DateTime
                exif.get_ifd(0x8769)[0x9003] = taken  # DateTimeOriginal
                im.save(dest, quality=92, exif=exif)
        else:
            shutil.copyfile(SAMPLES / name, dest)
    (photos / "home" / "chelsea.jpg.xmp").write_text(TAG_SIDECAR)


def _timeline(page, url: str, shots: Path) -> None:
    """`/`: the photos by month, newest first, rows of one height keeping each one's shape."""
    from playwright.sync_api import expect

    page.goto(url)
    expect(page.locator("h1")).to_contain_text("Your photos")
    expect(page.locator("#results .month")).to_have_text(["June 2019", "May 2012", "No date"])
    expect(page.locator("#results .card")).to_have_count(5)
    page.wait_for_function(ALL_LOADED)
    names = page.locator("#results .card .name").all_inner_texts()
    assert names == [
        "Florida trip/rocket.jpg", "Florida trip/astronaut.jpg", "home/coffee.jpg",
        "home/chelsea.jpg", "phone/camera.jpg",
    ]  # fmt: skip
    june = page.evaluate(BOXES)[:3]  # one row: rocket 640x427, astronaut 512x512, coffee 600x400
    assert max(b[0] for b in june) - min(b[0] for b in june) < 1  # one row
    assert max(b[5] for b in june) - min(b[5] for b in june) < 1  # of one height
    for (*_, w, h), shape in zip(june, (640 / 427, 1, 600 / 400), strict=True):
        assert abs(w / h - shape) / shape < 0.04  # each photo its own shape, not cut to 4:3
    page.screenshot(path=str(shots / "0-timeline.png"))
    # Narrower: June takes two rows; the first is stretched to the full width (still one
    # height), the month's last one keeps its height rather than blowing up one photo.
    page.set_viewport_size({"width": 700, "height": 800})
    rocket, astronaut, coffee = page.evaluate(BOXES)[:3]
    grid = page.locator("#results").bounding_box()
    assert abs(rocket[0] - astronaut[0]) < 1 and abs(rocket[5] - astronaut[5]) < 1
    assert abs(astronaut[1] + astronaut[2] - (grid["x"] + grid["width"])) < 2  # fills the row
    assert coffee[0] > rocket[0] + rocket[3] and coffee[5] < rocket[5]
    page.set_viewport_size({"width": 1200, "height": 800})


def _ways_in(page, url: str) -> None:
    """A folder from /browse, a tag from the ways in beside the timeline: their photos, newest
    first."""
    from playwright.sync_api import expect

    page.goto(url)
    page.locator("header nav a", has_text="Browse").click()
    page.locator("#folders a", has_text="Florida trip").click()
    expect(page.locator("h1")).to_contain_text("Florida trip")
    assert "in=" in page.url
    expect(page.locator("#results .card .name")).to_have_text(
        ["Florida trip/rocket.jpg", "Florida trip/astronaut.jpg"]
    )
    page.goto(url)
    page.locator("nav.ways a", has_text="Chelsea").click()
    assert "tag=Chelsea" in page.url
    expect(page.locator("#results .card")).to_have_count(1)
    expect(page.locator("#results .card .chip.tag")).to_have_text("your tag Chelsea")


def _phone(page, url: str, shots: Path) -> None:
    """390 x 844: three photos a row and a header under an eighth of the screen."""
    from playwright.sync_api import expect

    page.set_viewport_size(PHONE)
    page.goto(url)
    expect(page.locator("#results .card")).to_have_count(5)
    page.wait_for_function(ALL_LOADED)
    header = page.locator("header.top").bounding_box()
    assert header["height"] < 0.12 * PHONE["height"], header
    boxes = page.evaluate(BOXES)
    june = boxes[:3]
    assert max(b[0] for b in june) - min(b[0] for b in june) < 1  # three in one row
    assert all(b[2] > 0.3 * PHONE["width"] for b in june)  # each a third of the screen
    assert boxes[3][0] > june[0][0] + june[0][3]  # May 2012 on a row of its own
    page.screenshot(path=str(shots / "4-phone.png"))


def _publish(shots: Path, folder: str | None) -> None:
    """The README's screenshots, as small PNGs (256 colours): the timeline and the phone."""
    if not folder:
        return
    from PIL import Image

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for shot, name in (
        ("0-timeline.png", "gallery-timeline.png"),
        ("4-phone.png", "gallery-phone.png"),
    ):
        with Image.open(shots / shot) as im:
            im.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(
                out / name, optimize=True
            )
