"""Help in plain words: `search --help` says that dates, places, folders and cameras are read from
the query, and the help a person reads to index and search names no algorithm or metric."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import cli

# Words that mean something only to whoever wrote the code (training and eval help may use them).
JARGON = ("rank-fused", "fusion", "PSNR", " dB ", "FAISS", "embed every", "Caption, embed")
EVERYDAY = ([], ["index"], ["search"], ["caption"], ["status"], ["serve"], ["models"])


def _help(args: list[str]) -> str:
    res = CliRunner().invoke(cli.app, [*args, "--help"], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    return " ".join(res.stdout.split())  # rewrapped paragraphs read as one line


def test_search_help_says_the_query_is_read_for_filters():
    text = _help(["search"])
    assert "Dates, places, folders and cameras are read from the words" in text
    assert "--literal" in text


@pytest.mark.parametrize("args", EVERYDAY, ids=lambda a: " ".join(a) or "imgcap")
def test_everyday_help_has_no_jargon(args):
    text = _help(args)
    found = [w for w in JARGON if w in text]
    assert not found, (args, found)
