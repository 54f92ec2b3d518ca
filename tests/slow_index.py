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


def load_model(name, settings, captioner=True):
    model = real_load(name, settings, captioner)
    model.captioner = Slow(model.captioner)
    return model


if __name__ == "__main__":  # decode workers import this module again (forkserver preload)
    loading.load_model = load_model
    app(sys.argv[3:])
