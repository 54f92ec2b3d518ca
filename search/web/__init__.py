"""`imgcap serve`: the web gallery (server, library, pages, thumbnails, templates, static)."""
