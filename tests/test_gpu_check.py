"""benchmarks/gpu_check.sh runs on a CPU with --smoke (so it can't rot between GPU sessions),
and a failing stage becomes a row of the table, never a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_gpu_check_smoke_runs_every_stage_on_cpu(tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--smoke"]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())
    stages = {r["stage"] for r in rows}
    assert {"tests", "caption", "index", "faiss", "training"} <= stages
    assert not [r for r in rows if r["status"] == "ERROR"], rows
    measures = {r["measure"] for r in rows}
    assert "greedy captions/s (best batch)" in measures
    assert "while captioning / host-decode ceiling" in measures
    # GPU targets are not judged on a CPU.
    assert {r["status"] for r in rows if r["target"]} == {"n/a"}
    assert "## gpu_check summary" in done.stdout and "| stage | measure |" in done.stdout


def test_a_failing_stage_is_a_row_not_a_crash(monkeypatch, capsys):
    import gpu_check

    def boom(c):
        raise RuntimeError("CUDA error: device-side assert")

    monkeypatch.setitem(gpu_check.STAGES, "boom", boom)
    rc = gpu_check.main(["--device", "cpu", "--smoke", "--stages", "boom,faiss,nosuch"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "| boom | failed: RuntimeError: CUDA error: device-side assert | - |  | ERROR |" in out
    assert "| faiss | CPU flat search" in out  # the stages after it still ran
    assert "| nosuch | unknown stage | - |  | ERROR |" in out


def test_no_gpu_is_a_row_per_stage_not_a_crash(capsys):
    import gpu_check

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    rc = gpu_check.main(["--device", "cuda", "--smoke", "--stages", "training"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "no CUDA device" in out and "| training | failed: " in out
