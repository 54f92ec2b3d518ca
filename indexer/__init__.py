"""imgcap indexer: everything that writes (decode, encode, caption, store)."""

import os

__version__ = "0.1.0"

# OpenMP threads that spin while waiting (torch's default) steal the cores our own decode worker
# processes need: measured 4-7x slower model batches on 2 cores. It must be set before the first
# `import torch`, hence here; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
