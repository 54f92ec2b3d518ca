"""The one-writer lock is taken on the real file, so two names of one database share it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import cli
from indexer.errors import StoreError
from indexer.store.lock import lock_path, writer_lock


def test_symlinked_db_shares_the_lock_of_its_target(tmp_path):
    real = tmp_path / "data" / "imgcap.db"
    real.parent.mkdir()
    real.touch()
    link = tmp_path / "link.db"
    link.symlink_to(real)
    folder_link = tmp_path / "data-link"
    folder_link.symlink_to(real.parent, target_is_directory=True)
    assert lock_path(link) == lock_path(folder_link / "imgcap.db") == lock_path(real)
    with writer_lock(real):
        for other in (link, folder_link / "imgcap.db"):
            with pytest.raises(StoreError, match="already writing") as e:
                with writer_lock(other):
                    pass
            assert str(real) in str(e.value)  # says which file the two names share
    with writer_lock(link):
        with pytest.raises(StoreError, match="already writing"):
            with writer_lock(real):
                pass


def test_lock_for_a_database_that_does_not_exist_yet(tmp_path):
    target = tmp_path / "new" / "imgcap.db"
    link = tmp_path / "link.db"
    link.symlink_to(target)  # dangling until the first run creates the database
    with writer_lock(link):
        with pytest.raises(StoreError, match="already writing"):
            with writer_lock(target):
                pass


def test_second_index_through_a_symlink_is_refused(tmp_path):
    real = tmp_path / "imgcap.db"
    link = tmp_path / "other-name.db"
    link.symlink_to(real)
    photos = tmp_path / "photos"
    photos.mkdir()
    with writer_lock(real):
        r = CliRunner().invoke(cli.app, ["index", str(photos), "--db", str(link)])
    assert r.exit_code == 4 and "already writing" in r.output, r.output
