"""SIGTERM as Ctrl-C for an index run (indexer/run/pipeline.py, with either engine)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (`kill`, `timeout`, a service manager stopping us) stops the run the way Ctrl-C
    does: the batch in flight is abandoned, the rest recorded, the summary returned with
    `interrupted=True`. Only the first one interrupts, so a repeated SIGTERM cannot break the
    few writes that record the stop. Signal handlers belong to the main thread; elsewhere (a
    library caller's thread) SIGTERM keeps its default."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def interrupt(signum, frame) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
