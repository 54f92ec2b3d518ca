"""The model an index run takes without --model (indexer/run/run_model.py), on databases written
directly: the rule is the search's."""

from __future__ import annotations

from search_fixtures import Photo, make_db

from indexer.config import DEFAULT_MODEL, Settings
from indexer.run.run_model import model_for_run


def test_the_rule(tmp_path):
    db = tmp_path / "imgcap.db"
    assert model_for_run(Settings(db_path=db)).model == DEFAULT_MODEL  # no database yet
    make_db(tmp_path / "a", [Photo("a.jpg", "a dog"), Photo("b.jpg", "a cat")], db, model="old")
    # No `models` row says where "old" loads from (written before that table): its name, as a
    # search loads it.
    assert model_for_run(Settings(db_path=db)).model == "old"
    named = Settings.from_env(db_path=db, model="other")
    assert named.model_named and model_for_run(named).model == "other"  # a named model wins
    make_db(tmp_path / "b", [Photo("c.jpg", "a car")], db, model=DEFAULT_MODEL, seed=1)
    # The default model has results: kept, even though "old" has more (as a search picks).
    assert model_for_run(Settings(db_path=db)).model == DEFAULT_MODEL
