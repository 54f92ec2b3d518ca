"""Settings for an index run with the tiny model, shared by the run tests."""

from pathlib import Path

from indexer.config import Settings


def run_settings(tmp_path: Path, model_dir, **overrides) -> Settings:
    """A database under tmp_path, the CPU, one decode worker, batches of 4, and 4-token captions
    (the random tiny model rarely stops by itself; short captions keep tests fast)."""
    base = dict(
        db_path=tmp_path / "db" / "imgcap.db",
        model=str(model_dir),
        device="cpu",
        workers=1,
        batch_size=4,
        max_tokens=4,
    )
    return Settings(**{**base, **overrides})
