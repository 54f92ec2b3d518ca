#!/usr/bin/env bash
# GPU readiness check (issue 11 §4): `pytest -m gpu` + caption / index / FAISS / training speed
# on one GPU, printed as one summary table. Under 8 minutes on one H100/H200.
#
#   bash benchmarks/gpu_check.sh                       # the GPU run
#   bash benchmarks/gpu_check.sh --device cpu --smoke  # seconds on a CPU (the test suite runs it)
#   bash benchmarks/gpu_check.sh --json out.json       # rows as JSON as well
#
# Options are benchmarks/gpu_check.py's (--help). The whole run is capped at 470 s so that a
# stuck stage still leaves the table of the others within the 8 minutes.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
exec timeout --signal=INT --kill-after=10 "${GPU_CHECK_TIMEOUT:-470}" "$PY" benchmarks/gpu_check.py "$@"
