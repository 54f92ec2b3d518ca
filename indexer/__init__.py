"""imgcap indexer: everything that writes (decode, encode, caption, store)."""

__version__ = "0.1.0"
