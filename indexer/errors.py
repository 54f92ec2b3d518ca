"""The few named errors imgcap raises. cli.py turns each into one user message and an exit code.

Per-image problems (BadImageError) are recorded and reported, never fatal to a run.
"""

from __future__ import annotations


class ImgcapError(Exception):
    """Base of every expected error: the CLI prints its message, never a traceback."""

    exit_code = 1


class ModelNotAvailableError(ImgcapError):
    """A model file is missing locally and could not be downloaded (offline, 404, ...).
    `download_fix`: the advice for `imgcap models download` itself, which must not tell the
    person to run the command that just failed."""

    exit_code = 3

    def __init__(self, message: str, download_fix: str | None = None):
        super().__init__(message)
        self.download_fix = download_fix or message


class ModelFormatError(ImgcapError):
    """A model file exists but does not have the layout we expect (keys, shapes, spec)."""

    exit_code = 3


class BadImageError(ImgcapError):
    """One image could not be read or decoded. `path` and `reason` are shown to the user."""

    exit_code = 1

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class StoreError(ImgcapError):
    """The database is missing, locked by another run, or unusable."""

    exit_code = 4


class IndexingInProgress(ImgcapError):
    """Nothing to read yet because the first `imgcap index` is still running: not a failure
    (exit 0), the person only has to wait."""

    exit_code = 0


class UsageError(ImgcapError):
    """Bad combination of options or arguments."""

    exit_code = 2


class MetadataError(ImgcapError):
    """One photo's metadata (a sidecar, an embedded XMP packet) could not be read or written.
    Like BadImageError it is reported per file and never stops a run."""

    exit_code = 1

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ToolMissingError(ImgcapError):
    """An external program a command needs (exiftool for `write-back --embed`) is not installed."""

    exit_code = 1
