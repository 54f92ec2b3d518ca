"""search/filters.py: one reading of the filters for the CLI's options and the gallery's URL."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from indexer.errors import UsageError
from indexer.store.queries import FileFilter
from search.filters import file_filter
from search.web.server import query_filter


def test_fields_are_cleaned_and_warnings_go_to_the_callback(tmp_path):
    warned: list[str] = []
    flt = file_filter(
        tmp_path / "nowhere",
        "2020",
        "2019-06",
        "  Canon ",
        [" grandma ", " "],
        "Paris, , France ",
        warn=warned.append,
    )
    assert flt == FileFilter(
        folder=str(tmp_path / "nowhere"),
        after="2020",
        before="2019-06",
        camera="Canon",
        tags=("grandma",),
        place=("Paris", "France"),
    )
    assert warned == [
        f"--in {tmp_path / 'nowhere'}: no such folder",
        "--after 2020 is not before --before 2019-06: no photo can match",
    ]
    assert file_filter(camera="  ") == FileFilter()


def test_messages_name_the_field_as_the_caller_spells_it():
    with pytest.raises(UsageError, match="^--after '2019-13'"):
        file_filter(after="2019-13")
    with pytest.raises(UsageError, match="^before '2019-02-30' is not a real date"):
        file_filter(before="2019-02-30", prefix="")


def test_the_gallery_reads_the_same_filter_as_the_cli(tmp_path):
    url = QueryParams(
        {"in": f" {tmp_path}/a/../b ", "after": " 2019 ", "camera": " Canon ", "place": "Paris"}
    )
    assert query_filter(url) == file_filter(
        f"{tmp_path}/a/../b", "2019", None, "Canon", (), "Paris"
    )
    assert query_filter(url).folder == str(tmp_path / "b")
    assert query_filter(QueryParams({"in": "", "after": ""})) == FileFilter()
    with pytest.raises(UsageError, match="absolute path"):
        query_filter(QueryParams({"in": "Photos/2019"}))
