"""A query's language decides its text tower: short queries in ten languages (and mixed ones)
route as tests/data/language_queries.tsv says; ambiguous short ones stay English."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.errors import UsageError
from search.language import check_lang, detect, query_language

TABLE = Path(__file__).parent / "data" / "language_queries.tsv"
ROWS = [
    tuple(line.split("\t", 1))
    for line in TABLE.read_text(encoding="utf-8").splitlines()
    if line and not line.startswith("#")
]


def test_the_table_covers_ten_languages_besides_english():
    assert len({lang for lang, _ in ROWS} - {"en"}) == 10


@pytest.mark.parametrize(("expected", "query"), ROWS)
def test_short_queries_route_to_their_language(expected, query):
    assert detect(query) == expected


@pytest.mark.parametrize("query", ["dog", "Paris 2019", "café", "Strand", "IMG_2041", "", "2019"])
def test_ambiguous_queries_stay_english(query):
    assert detect(query) == "en"


def test_lang_forces_either_way_and_is_checked():
    assert query_language("Hund am Strand", "en") == "en"
    assert query_language("dog", "de") == "de"
    assert query_language("Hund am Strand", "auto") == "de"
    assert check_lang(None) == "auto" and check_lang(" DE ") == "de"
    with pytest.raises(UsageError, match="--lang"):
        check_lang("german!")
