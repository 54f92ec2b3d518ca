"""`imgcap` whose captioner is slow and says when a batch reaches it, so a test can strike while
decode workers are alive and the model is busy. Run as a script:

    python tests/slow_index.py SECONDS_PER_BATCH MAX_TOKENS index PATH ...
"""

import sys
import time

import indexer.models.loading as loading
from cli import app

real_load = loading.load_model


class Slow:
    def __init__(self, inner):
        self.inner = inner

    def caption(self, features, beams=1, max_tokens=67):
        print("batch", flush=True)
        time.sleep(float(sys.argv[1]))
        return self.inner.caption(features, beams=beams, max_tokens=int(sys.argv[2]))


def kill_at_batch(args: list[str], batches: int) -> int:
    """Run `imgcap ARGS` through this script (0.3 s a batch, 6 tokens, one thread) in a session
    of its own and SIGKILL the whole group, decode workers included, once `batches` batches
    have reached the captioner. Returns how many did (fewer: the run ended or a minute passed)."""
    import os
    import signal
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, __file__, "0.3", "6", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,  # so the kill takes its decode workers too
    )
    seen, deadline = 0, time.monotonic() + 60
    while seen < batches and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line.strip() == "batch"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return seen


def load_model(name, settings, captioner=True):
    model = real_load(name, settings, captioner)
    model.captioner = Slow(model.captioner)
    return model


if __name__ == "__main__":  # decode workers import this module again (forkserver preload)
    loading.load_model = load_model
    app(sys.argv[3:])
