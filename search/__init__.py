"""imgcap search: reads the store, owns the FAISS cache and query ranking."""
