"""Query understanding, table-driven: query -> (text left, filters), against a fixed index
vocabulary, including the false positives that must stay words ("1984 poster", "may" the verb,
"a nice view", "pixel art")."""

from __future__ import annotations

from datetime import date

import pytest

from indexer.store.places import fold
from indexer.store.queries import FileFilter
from search import understand
from search.understand import Understood, camera_phrases

TODAY = date(2026, 12, 3)  # a Thursday
YEARS_WITH_PHOTOS = {1995, 2018, 2019, 2020, 2021, 2024, 2025, 2026}
PLACES = [  # (city, region, country) of the index's photos
    ("Paris", "Île-de-France", "France"),
    ("Nice", "Provence-Alpes-Côte d'Azur", "France"),
    ("New York City", "New York", "United States"),
    ("Zürich", "Zurich", "Switzerland"),
    ("London", "England", "United Kingdom"),
    ("Istanbul", "Istanbul", "Turkey"),
]
FOLDERS = [
    "/home/ann/Pictures/Holidays/2019",
    "/home/ann/Pictures/Work",
    "/home/ann/Pictures/2019",
    "/home/ann/Pictures/Garden",
]
CAMERAS = [("Apple", "iPhone 12"), ("Canon", "Canon EOS 5D"), ("Google", "Pixel 7")]


class FakeVocabulary:
    def __init__(self, media: set[str] | None = None):
        self.media = media or set()

    def has_photos(self, after: str, before: str) -> bool:
        return any(after <= f"{y}-06-01" < before for y in YEARS_WITH_PHOTOS)

    def places(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for place in PLACES:
            for name in place:
                out.setdefault(fold(name), name)  # the city's spelling first, as the store
        return out

    def places_together(self, names) -> bool:
        return any({fold(n) for n in names} <= {fold(x) for x in p} for p in PLACES)

    def folders(self) -> dict[str, str]:
        return understand._folder_names(FOLDERS)

    def cameras(self) -> dict[str, str]:
        return camera_phrases(CAMERAS)

    def media_types(self) -> set[str]:
        return self.media


Y2019 = {"after": "2019-01-01", "before": "2020-01-01"}
SUMMER_2026 = {"after": "2026-06-01", "before": "2026-09-01"}

# (query, text left, filters understood); text None = the query unchanged
CASES = [
    ("dog on the beach", None, {}),
    ("dog 2019", "dog", Y2019),
    ("kids in Paris 2019", "kids", {**Y2019, "place": ["Paris"]}),
    ("1984 poster", None, {}),  # no photo from 1984: a number, not a date
    ("the 1984 poster", None, {}),
    ("1970s party", None, {}),
    ("1990s party", "party", {"after": "1990-01-01", "before": "2000-01-01"}),
    ("I may go hiking", None, {}),  # "may" alone is never a month
    ("march for science", None, {}),
    ("summer", None, {}),
    ("may 2019 picnic", "picnic", {"after": "2019-05-01", "before": "2019-06-01"}),
    ("March 2021", "March 2021", {"after": "2021-03-01", "before": "2021-04-01"}),
    ("sunset summer 2018", "sunset", {"after": "2018-06-01", "before": "2018-09-01"}),
    ("winter 2019 snow", "snow", {"after": "2019-12-01", "before": "2020-03-01"}),
    ("dog on the beach last summer", "dog on the beach", SUMMER_2026),
    ("beach this summer", "beach", SUMMER_2026),
    ("snow last winter", "snow", {"after": "2025-12-01", "before": "2026-03-01"}),
    ("snow this winter", "snow", {"after": "2026-12-01", "before": "2027-03-01"}),
    ("cake yesterday", "cake", {"after": "2026-12-02", "before": "2026-12-03"}),
    ("cake today", "cake", {"after": "2026-12-03", "before": "2026-12-04"}),
    ("party last year", "party", {"after": "2025-01-01", "before": "2026-01-01"}),
    ("this year", "this year", {"after": "2026-01-01", "before": "2027-01-01"}),
    ("cats last month", "cats", {"after": "2026-11-01", "before": "2026-12-01"}),
    ("cats last week", "cats", {"after": "2026-11-23", "before": "2026-11-30"}),
    ("snow last march", "snow", {"after": "2026-03-01", "before": "2026-04-01"}),
    ("tree last december", "tree", {"after": "2025-12-01", "before": "2026-01-01"}),
    ("hike past 30 days", "hike", {"after": "2026-11-03", "before": "2026-12-04"}),
    ("2 years ago", "2 years ago", {"after": "2024-01-01", "before": "2025-01-01"}),
    ("dogs since 2020", "dogs", {"after": "2020-01-01"}),
    ("cars before 2020", "cars", {"before": "2020-01-01"}),
    ("cars after 2019", "cars", {"after": "2020-01-01"}),
    ("cars until 2019", "cars", {"before": "2020-01-01"}),
    ("photos from 2021-03", "photos", {"after": "2021-03-01", "before": "2021-04-01"}),
    ("2021-03-15 birthday", "birthday", {"after": "2021-03-15", "before": "2021-03-16"}),
    ("2019-13 poster", None, {}),  # not a real month
    ("beach 2018 to 2020", "beach", {"after": "2018-01-01", "before": "2021-01-01"}),
    ("beach 2018-2020", "beach", {"after": "2018-01-01", "before": "2021-01-01"}),
    ("1970-1975 cars", None, {}),  # no photo then
    ("2020 2021 fireworks", "2021 fireworks", {"after": "2020-01-01", "before": "2021-01-01"}),
    ("whiteboard photos from the Work folder", "whiteboard photos", {"folder": "Work"}),
    ("sunset in Holidays", "sunset", {"folder": "Holidays"}),
    ("holidays at home", None, {}),  # a folder name without "in"/"from"/"folder": a word
    ("kids in the garden", None, {}),  # lowercase after "in": a garden, not the folder
    ("kids in the Garden", "kids", {"folder": "Garden"}),
    ("kids from the garden folder", "kids", {"folder": "Garden"}),
    ("dog in the 2019 folder", "dog", {"folder": "2019"}),  # "folder": not the year
    ("pictures of ann", None, {}),  # a folder every photo is in says nothing
    ("a nice view", None, {}),  # Nice is in the index, but "nice" is an everyday word
    ("sunset in nice", "sunset", {"place": ["Nice"]}),
    ("Nice harbour", "harbour", {"place": ["Nice"]}),
    ("Paris France", "Paris France", {"place": ["Paris", "France"]}),
    ("paris london bridges", "london bridges", {"place": ["Paris"]}),
    ("new york skyline", "skyline", {"place": ["New York"]}),
    ("zurich lake", "lake", {"place": ["Zürich"]}),
    ("castles of ile de france", "castles", {"place": ["Île-de-France"]}),
    ("Paris's cafés", "cafés", {"place": ["Paris"]}),
    ("dogs in Springfield", None, {}),  # no photo from Springfield
    ("turkey dinner", None, {}),  # photos from Turkey, but this is a bird
    ("kebab trip to turkey", "kebab trip", {"place": ["Turkey"]}),
    ("canon portrait", "portrait", {"camera": "Canon"}),
    ("sunset shot on iphone", "sunset", {"camera": "iPhone"}),
    ("eos 5d bird", "bird", {"camera": "EOS 5D"}),
    ("pixel art", None, {}),  # Pixel 7 in the index, but "pixel" alone is a word
    ("apple pie", None, {}),  # Apple makes the index's iPhone, but this is a pie
    ("sunset shot on apple", "sunset", {"camera": "Apple"}),
    ("google pixel 7 selfie", "selfie", {"camera": "Pixel 7"}),
    ("video of the cake", None, {}),  # no videos in this index
    (
        "dog in Paris summer 2019 with canon",
        "dog",
        {"after": "2019-06-01", "before": "2019-09-01", "place": ["Paris"], "camera": "Canon"},
    ),
]


@pytest.mark.parametrize(("query", "text", "filters"), CASES, ids=[c[0] for c in CASES])
def test_query_is_read_as_expected(query, text, filters):
    got = understand.understand(query, FakeVocabulary(), today=TODAY)
    assert got.text == (query if text is None else text)
    d = got.to_dict()
    del d["text"]
    assert d == filters


def test_at_least_forty_queries_with_false_positives():
    assert len(CASES) >= 40
    assert sum(1 for _, text, f in CASES if text is None and not f) >= 10


def test_explicit_options_win_and_their_words_stay_text():
    vocab = FakeVocabulary()
    got = understand.understand("dog in Paris 2019", vocab, TODAY, skip={"date"})
    assert (got.text, got.after, got.place) == ("dog 2019", None, ("Paris",))
    got = understand.understand("dog in Paris 2019", vocab, TODAY, skip={"place"})
    assert got.text == "dog in Paris" and got.place == ()
    flt = FileFilter(after="2018", place=("London",))
    assert understand.skipped_kinds(flt) == {"date", "place"}
    assert understand.skipped_kinds(FileFilter(folder="/x")) == {"folder"}
    # apply() never overrides what an option set
    merged = understand.apply(flt, Understood("dog", after="2019-01-01", camera="Canon"))
    assert (merged.after, merged.place, merged.camera) == ("2018", ("London",), "Canon")


def test_videos_only_when_the_index_can_filter_them():
    got = understand.understand("birthday cake video", FakeVocabulary({"video"}), TODAY)
    assert (got.text, got.media) == ("birthday cake", "video")


def test_explanation_reads_like_the_issue():
    got = understand.understand("kids in Paris 2019", FakeVocabulary(), TODAY)
    assert got.label() == "after 2019-01-01, before 2020-01-01, place Paris"


@pytest.mark.parametrize(
    ("today", "query", "after", "before"),
    [
        # during a summer, "last summer" is the one before, "this summer" the current one
        (date(2026, 7, 15), "last summer", "2025-06-01", "2025-09-01"),
        (date(2026, 7, 15), "this summer", "2026-06-01", "2026-09-01"),
        (date(2026, 9, 1), "last summer", "2026-06-01", "2026-09-01"),
        (date(2026, 1, 10), "this winter", "2025-12-01", "2026-03-01"),
        (date(2026, 1, 10), "last winter", "2024-12-01", "2025-03-01"),
        (date(2026, 1, 10), "last month", "2025-12-01", "2026-01-01"),
        (date(2026, 3, 1), "yesterday", "2026-02-28", "2026-03-01"),
        (date(2026, 11, 30), "last week", "2026-11-23", "2026-11-30"),  # a Monday
        (date(2026, 3, 31), "last 1 months", "2026-02-28", "2026-04-01"),
    ],
)
def test_relative_dates_count_from_today(today, query, after, before):
    got = understand.understand(query, FakeVocabulary(), today=today)
    assert (got.after, got.before) == (after, before)


def test_relative_dates_against_a_naive_day_by_day_reading():
    """Every day of two years: "last summer" ends on or before today, starts 3 months earlier,
    is in June, and no later summer has ended (naive check written from the rule)."""
    day = date(2025, 1, 1)
    while day < date(2027, 1, 1):
        got = understand.understand("last summer", FakeVocabulary(), today=day)
        start, end = date.fromisoformat(got.after), date.fromisoformat(got.before)
        assert start.month == 6 and start.day == 1 and end == date(start.year, 9, 1)
        assert end <= day < date(start.year + 1, 9, 1)
        day = date.fromordinal(day.toordinal() + 1)


def test_camera_phrases_from_makes_and_models():
    phrases = camera_phrases(CAMERAS + [("NIKON CORPORATION", "NIKON D750"), (None, "X-T3")])
    assert phrases["iphone 12"] == "iPhone 12" and phrases["iphone"] == "iPhone"
    assert phrases["eos"] == "EOS" and phrases["canon"] == "Canon"
    assert "pixel" not in phrases and phrases["google"] == "Google"
    assert phrases["d750"] == "D750" and phrases["x t3"] == "X-T3"
    assert phrases["nikon"] == "NIKON"


def test_any_words_parse_without_error_and_the_text_keeps_their_order():
    """Random queries from tricky words: never an error; the text left is the query's words
    in order, less those read as filters (or all of them)."""
    import random

    words = (
        "last this past next summer winter may march 2019 2019-02-30 2021-03 1990s 0000 in from"
        " the folder Work Holidays paris Paris France new york city nice reading 2 years ago"
        " days weeks 999 since after before until canon apple shot on with video , . 's -"
    ).split()
    rng = random.Random(0)
    vocab = FakeVocabulary({"video"})
    for _ in range(2000):
        q = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        got = understand.understand(q, vocab, TODAY)
        left = got.text.split()
        it = iter(q.split())
        assert all(w in it for w in left), (q, got)  # a subsequence of the query
        if got.after and got.before:
            assert got.after < got.before, (q, got)


def _span(after: str, before: str) -> dict[str, str]:
    return {"after": after, "before": before}


SUMMER_2019 = _span("2019-06-01", "2019-09-01")
JULY_2019 = _span("2019-07-01", "2019-08-01")
# Dates in the other languages read (search/dates.py): (query, text left, filters)
LANGUAGE_CASES = [
    ("Hund 2019", "Hund", Y2019),  # a year in any language
    ("Hund 2019-2021", "Hund", _span("2019-01-01", "2022-01-01")),
    ("Strand 2018–2020", "Strand", _span("2018-01-01", "2021-01-01")),
    ("Strand 2018 bis 2020", "Strand", _span("2018-01-01", "2021-01-01")),
    ("Hund seit 2020", "Hund", {"after": "2020-01-01"}),  # open-ended, as "since 2020"
    ("Hund nach 2019", "Hund", {"after": "2020-01-01"}),
    ("chien avant 2020", "chien", {"before": "2020-01-01"}),
    ("perro antes de 2020", "perro", {"before": "2020-01-01"}),
    ("cane prima del 2020", "cane", {"before": "2020-01-01"}),
    ("hond tot 2019", "hond", {"before": "2020-01-01"}),
    ("Hund im Sommer 2019", "Hund", SUMMER_2019),  # German
    ("Schnee Dezember 2018", "Schnee", _span("2018-12-01", "2019-01-01")),
    ("Geburtstag März 2021", "Geburtstag", _span("2021-03-01", "2021-04-01")),
    ("Geburtstag marz 2021", "Geburtstag", _span("2021-03-01", "2021-04-01")),
    ("Blumen Frühling 2020", "Blumen", _span("2020-03-01", "2020-06-01")),
    ("Sommer am See", None, {}),  # a season without a year is a word
    ("plage juillet 2021", "plage", _span("2021-07-01", "2021-08-01")),  # French
    ("neige en fevrier 2019", "neige", _span("2019-02-01", "2019-03-01")),
    ("plage pendant l'été 2019", "plage", SUMMER_2019),
    ("ski hiver 2018", "ski", _span("2018-12-01", "2019-03-01")),
    ("playa verano 2020", "playa", _span("2020-06-01", "2020-09-01")),  # Spanish
    ("nieve en el invierno de 2019", "nieve", _span("2019-12-01", "2020-03-01")),
    ("fiesta julio de 2019", "fiesta", JULY_2019),
    ("fiesta de cumpleaños 2019", "fiesta de cumpleaños", Y2019),
    ("fotos de 2019", "fotos", Y2019),
    ("hojas otono 2018", "hojas", _span("2018-09-01", "2018-12-01")),
    ("mare estate 2018", "mare", _span("2018-06-01", "2018-09-01")),  # Italian
    ("mare nell'estate 2018", "mare", _span("2018-06-01", "2018-09-01")),
    ("festa luglio del 2019", "festa", JULY_2019),
    ("praia verão 2017", "praia", _span("2017-06-01", "2017-09-01")),  # Portuguese
    ("festa no verao de 2019", "festa", SUMMER_2019),
    ("bolo março 2020", "bolo", _span("2020-03-01", "2020-04-01")),
    ("strand zomer 2016", "strand", _span("2016-06-01", "2016-09-01")),  # Dutch
    ("sneeuw in de winter van 2018", "sneeuw", _span("2018-12-01", "2019-03-01")),
    ("taart maart 2019", "taart", _span("2019-03-01", "2019-04-01")),
    ("2019年夏天", "2019年夏天", SUMMER_2019),  # Chinese
    ("海滩2019年夏天", "海滩", SUMMER_2019),
    ("北京2019年7月的照片", "北京 的照片", JULY_2019),
    ("2019年七月 猫", "猫", JULY_2019),
    ("7月 烟花", "烟花", _span("2026-07-01", "2026-08-01")),  # the latest July begun
    ("12月 雪", "雪", _span("2026-12-01", "2027-01-01")),
    ("夏 2019 海", "海", SUMMER_2019),
    ("2018年到2020年 猫", "猫", _span("2018-01-01", "2021-01-01")),
    ("2019年の夏 花火", "花火", SUMMER_2019),  # Japanese
    ("東京 2019年7月", "東京", JULY_2019),
    ("桜 2019年", "桜", Y2019),
    ("夏休み", None, {}),
    ("real estate agent", None, {}),
    ("la playa de mayo", None, {}),  # a month without a year is a word
]


@pytest.mark.parametrize(
    ("query", "text", "filters"), LANGUAGE_CASES, ids=[c[0] for c in LANGUAGE_CASES]
)
def test_dates_in_other_languages(query, text, filters):
    got = understand.understand(query, FakeVocabulary(), today=TODAY)
    assert got.text == (query if text is None else text)
    d = got.to_dict()
    del d["text"]
    assert d == filters
