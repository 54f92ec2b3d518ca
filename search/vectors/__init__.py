"""The FAISS cache: per-model vector indexes built from SQLite, never the source of truth."""
