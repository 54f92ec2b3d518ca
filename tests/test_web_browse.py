"""The gallery without a query: the timeline on `/`, the ways in (folders, places, tags,
cameras, dates) on it and on /browse, and what every card shows (its shape, its file's name,
reasons in plain words, separators); the favicon. TestClient and the fake CLIP (no torch)."""

from __future__ import annotations

import re
from pathlib import Path

from search_fixtures import Photo
from serve_fixtures import PHOTOS, client, ids_by_name, make_gallery

from indexer.store.database import Store
from indexer.store.places import Place
from search.web.pages import aspect, aspects, chips, month_of
from search.web.server import STATIC_DIR

# PHOTOS plus a second July 2019 photo: a month that goes on from one page to the next.
TIMELINE = [*PHOTOS, Photo("trips/dog_park2.png", "a dog on grass", taken_at="2019-07-01T09:00")]
XSS = "<img src=x onerror=alert(1)>"


def _tag_sidecar(*tags: str) -> str:
    items = "".join(
        f"<rdf:li>{t.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}</rdf:li>"
        for t in tags
    )
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        ' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag>'
        f"{items}</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"
    )


def _tag(root: Path, db: Path, name: str, *tags: str) -> None:
    from indexer.metadata.tags import refresh_tags

    (root / f"{name}.xmp").write_text(_tag_sidecar(*tags))
    with Store.open(db) as store:
        refresh_tags(store, [str(root)])


def _months(html: str) -> list[str]:
    return re.findall(r'<h2 class="month"[^>]*>(?:<a [^>]*>)?([^<]+)<', html)


def _names(html: str) -> list[str]:
    return [Path(p).name for p in re.findall(r'<span class="name" title="([^"]+)"', html)]


def test_the_library_opens_as_a_timeline_by_month_newest_first(tmp_path):
    _, db = make_gallery(tmp_path, TIMELINE)
    c = client(db)
    html = c.get("/", params={"n": 3}).text
    assert "Your photos" in html
    assert _names(html) == ["red_car.png", "cat_sofa.png", "dog_park.png"]
    assert _months(html) == ["March 2021", "January 2020", "July 2019"]
    # a month heading is the filter-only search of that month
    assert '<a href="/?after=2021-03&amp;before=2021-04">March 2021</a>' in html
    # the next page goes on with July (no second heading), then June, then the undated
    more = c.get("/", params={"n": 3, "page": 2, "partial": "1"})
    assert more.headers["X-Has-More"] == "0"
    assert _names(more.text) == ["dog_park2.png", "dog_beach.png", "kitchen.png"]
    assert _months(more.text) == ["June 2019", "No date"]
    # the same page on its own (the "More photos" link, without scripts) names its first month
    alone = c.get("/", params={"n": 3, "page": 2}).text
    assert _months(alone) == ["July 2019", "June 2019", "No date"]
    assert 'id="more"' in html and "page=2" in html
    # the whole page (one page: every month once)
    assert _months(c.get("/").text) == [
        "March 2021", "January 2020", "July 2019", "June 2019", "No date",
    ]  # fmt: skip
    assert month_of("2019-12-31T23:00") == ("2019-12", "December 2019")
    for odd in (None, "", "0000-00", "2019-13-01", "abcd-06-01", "2019-6-1", "٢٠١٩-06"):
        assert month_of(odd) == ("", "No date"), odd


def test_ways_in_count_folders_places_tags_cameras_and_years(tmp_path):
    root, db = make_gallery(tmp_path, TIMELINE)
    _tag(root, db, "trips/dog_beach.png", "Grandma", "beach")
    _tag(root, db, "home/cat_sofa.png", "grandma")  # one tag in another case
    c = client(db)
    ids = ids_by_name(c)
    paris = Place("Paris", "Île-de-France", "France", "FR")
    with Store.open(db) as store:
        from indexer.store import places

        places.save(store.db, [(ids["dog_beach.png"], 0, 0, paris)], "test")
        places.save(store.db, [(ids["dog_park.png"], 0, 0, paris)], "test")
    page = c.get("/browse").text

    def count(label: str, params: str) -> int:
        m = re.search(
            rf'<a href="/\?{re.escape(params)}" title="[^"]*">{re.escape(label)}</a>'
            r' <span class="count">(\d+)</span>',
            page,
        )
        assert m, (label, params)
        return int(m.group(1))

    from urllib.parse import quote_plus

    folder = str(root)
    assert count("photos", f"in={quote_plus(folder)}") == 6
    assert f'title="{folder}">photos</a>' in page  # a root: its full path in the tooltip
    assert count("trips", f"in={quote_plus(folder + '/trips')}") == 3
    assert count("home", f"in={quote_plus(folder + '/home')}") == 3
    assert count("Paris, Île-de-France, France", "place=Paris%2C+%C3%8Ele-de-France%2C+France") == 2
    assert count("Grandma", "tag=Grandma") == 2 and count("beach", "tag=beach") == 1
    assert count("Canon EOS 80D", "camera=Canon+EOS+80D") == 1
    assert count("Apple iPhone 11", "camera=Apple+iPhone+11") == 1
    assert count("2019", "after=2019&amp;before=2020") == 3
    assert count("2021", "after=2021&amp;before=2022") == 1
    assert 'name="after"' in page and 'name="before"' in page  # a date range of one's own
    # each way in is the filter-only search it links to, with as many photos
    for params, n in ((f"in={quote_plus(folder + '/trips')}", 3), ("tag=Grandma", 2),
                      ("place=Paris%2C+%C3%8Ele-de-France%2C+France", 2),
                      ("camera=Canon+EOS+80D", 1), ("after=2019&before=2020", 3)):  # fmt: skip
        hits = c.get(f"/api/search?{params}").json()["hits"]
        assert len(hits) == n, params
    # the landing page shows the first few of each beside the timeline
    landing = c.get("/").text
    assert '<nav class="ways"' in landing and ">Grandma</a>" in landing and ">trips</a>" in landing
    assert 'href="/browse#tags"' not in landing  # (two tags: both shown)
    # a place filter says where each photo was taken; a tag filter names the tag
    r = c.get("/", params={"place": "Paris"}).text
    assert (
        r.count('<span class="chip place" title="Paris, Île-de-France, France">taken in Paris<')
        == 2
    )
    r = c.get("/", params={"tag": "grandma"}).text
    assert _names(r) == ["cat_sofa.png", "dog_beach.png"]
    # counted again when the database changes (a sidecar's new tag, read by an index run)
    assert "Grandpa" not in page
    _tag(root, db, "home/kitchen.png", "Grandpa")
    assert '">Grandpa</a> <span class="count">1</span>' in c.get("/browse").text


def test_beside_the_timeline_the_first_few_ways_in_link_to_all_of_them(tmp_path):
    photos = [
        Photo(f"{y}/m{m}/p{m}.png", "a photo", taken_at=f"{y}-0{m}-01")
        for y in (2018, 2019)
        for m in range(1, 9)
    ]
    _, db = make_gallery(tmp_path, photos)
    c = client(db)
    landing = c.get("/").text
    start = landing.index('<nav class="ways"')
    ways = landing[start : landing.index("</nav>", start)]
    folders = ways[
        ways.index('id="folders"') : ways.index("</section>", ways.index('id="folders"'))
    ]
    assert re.findall(r">([^<]+)</a> <span", folders) == ["photos", "2018", "2019"]  # depth <= 1
    assert 'href="/browse#folders">all 19 folders</a>' in folders
    assert 'href="/browse#years">' not in ways  # two years: all shown
    assert c.get("/browse").text.count('class="depth-2"') == 16


def test_a_date_that_is_no_date_is_in_no_month(tmp_path):
    photos = [Photo("a.png", "a photo", taken_at="2019-06-01"), Photo("b.png", "b", taken_at="x")]
    _, db = make_gallery(tmp_path, photos)
    c = client(db)
    assert sorted(_months(c.get("/").text)) == ["June 2019", "No date"]
    assert re.findall(r"<li><a [^>]*>([^<]+)</a>", c.get("/browse").text)[-1] == "June 2019"


def test_names_of_folders_and_tags_are_escaped(tmp_path):
    folder = "<script>alert(1)<"
    photos = [Photo(f"{folder}/x.png", "a photo", taken_at="2020-01-01T00:00")]
    root, db = make_gallery(tmp_path, photos)
    _tag(root, db, f"{folder}/x.png", XSS)
    c = client(db)
    for html in (c.get("/").text, c.get("/browse").text, c.get("/", params={"tag": XSS}).text):
        assert "<script>alert" not in html and XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/x.png" in c.get("/").text  # the card's name, as text
    assert "&lt;img src=x onerror=alert(1)&gt;" in c.get("/browse").text


def test_cards_keep_their_shape_and_name_their_file(tmp_path):
    photos = [
        Photo("a/tall.png", "a tall photo", width=300, height=450, taken_at="2020-01-02"),
        Photo("a/wide.png", "a wide photo", width=640, height=427, taken_at="2020-01-01"),
        Photo(
            "b/tall.png", "-", same_as="a/tall.png", width=300, height=450, taken_at="2020-01-02"
        ),
        Photo("a/pano.png", "a panorama", width=9000, height=1000),
    ]
    root, db = make_gallery(tmp_path, photos)
    c = client(db)
    html = c.get("/", params={"all": "1", "q": "photo", "mode": "keyword"}).text
    shapes = list(re.findall(r'data-ar="(\d+)">.*?<span class="name" title="([^"]+)"', html, re.S))
    assert {Path(v).parent.name + "/" + Path(v).name: k for k, v in shapes} == {
        "a/tall.png": "65", "b/tall.png": "65", "a/wide.png": "150"
    }  # fmt: skip
    # two copies side by side say which is which
    assert ">a/tall.png</span>" in html and ">b/tall.png</span>" in html
    assert 'width="300" height="450"' in html  # the browser knows the shape before the image
    assert aspect({"width": 9000, "height": 1000}) == "400"  # a panorama, cut to 4:1
    assert aspect({"width": None, "height": None}) == "135"  # unknown: 4:3
    css = (STATIC_DIR / "style.css").read_text()
    for shape in aspects():  # every shape a card can have has its rule
        assert f'[data-ar="{shape}"] {{ --ar: {int(shape) / 100:g}; }}' in css


def test_caption_edited_badge_place_and_time_are_separated(tmp_path):
    root, db = make_gallery(tmp_path)
    c = client(db)
    ids = ids_by_name(c)
    c.post(f"/api/photo/{ids['dog_beach.png']}/caption", json={"caption": "Dog on the 1st floor."})
    with Store.open(db) as store:
        from indexer.store import places

        places.save(store.db, [(ids["dog_beach.png"], 0, 0, Place("Paris", None, None, "FR"))], "t")
    html = c.get("/", params={"in": str(root / "trips")}).text
    card = html[html.index("Dog on the 1st floor.") :]
    card = card[: card.index("</figure>")]
    text = re.sub(r"<[^>]+>", "", card)
    assert "1st floor. · edited" in text and "Paris · 2019-06-01 10:00" in text


def test_chips_say_why_in_plain_words():
    hit = {
        "tags": ["Grandma"],
        "matched": ["grandma", "beach"],
        "matched_in": {"tag": ["grandma"], "caption": ["beach"], "folder": ["trips"],
                       "description": ["bob"], "place": ["paris"]},
        "place": "Paris, Île-de-France, France",
        "signals": {"image": {"score": 0.31, "rank": 2}, "caption": {"score": 0.4, "rank": None},
                    "keyword": {"score": 1.2, "rank": 1}},
    }  # fmt: skip
    got = [(c.text, c.kind) for c in chips(hit, "grandma on the beach")]
    assert got == [
        ("your tag Grandma", "tag"),
        ("your description mentions bob", "description"),
        ("in folder trips", "folder"),
        ("taken in Paris", "place"),
        ("caption mentions beach", "mentions"),
        ("looks like “grandma on the beach”", "looks"),
    ]
    assert chips(hit, "x")[-1].title == "picture similarity 0.31, #2 by the picture"
    # more like this: no words, the picture alone
    assert [c.text for c in chips({"signals": {"image": {"score": 0.9, "rank": 1}}})] == [
        "looks alike"
    ]
    long = chips({"signals": {"image": {"score": 0.9, "rank": 1}}}, "word " * 20)[0].text
    assert len(long) < 50 and long.endswith("…”")


def test_favicon_is_served_and_linked(tmp_path):
    _, db = make_gallery(tmp_path)
    c = client(db)
    for url in ("/favicon.ico", "/static/favicon.svg"):
        r = c.get(url)
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
        assert r.text.startswith("<svg")
    assert '<link rel="icon" href="/static/favicon.svg"' in c.get("/").text
    # an index-less server still has the icon (the page says how to index)
    assert client(tmp_path / "missing.db").get("/favicon.ico").status_code == 200
    assert "No index yet" in client(tmp_path / "missing.db").get("/browse").text


def test_a_file_name_that_is_not_utf8_is_shown_escaped(tmp_path):
    photos = [Photo("caf\udce9/\udcff.png", "a photo", taken_at="2020-01-01T00:00")]
    _, db = make_gallery(tmp_path, photos)
    c = client(db)
    for html in (c.get("/").text, c.get("/browse").text):
        assert "caf\\xe9" in html
    assert ">caf\\xe9/\\xff.png</span>" in c.get("/").text
    link = re.search(r'href="/\?(in=[^"]*caf%E9[^"]*)"', c.get("/browse").text).group(1)
    page = c.get(f"/?{link}")  # the folder's own bytes, not U+FFFD: its photo is found
    assert page.status_code == 200 and ">caf\\xe9/\\xff.png</span>" in page.text
    assert len(c.get(f"/api/search?{link}").json()["hits"]) == 1
