"""Training precision: `auto` trains in fp32 on a CPU (bf16 there is a captioning default)."""

from __future__ import annotations

from indexer.config import Settings
from indexer.train.loop import training_settings


def test_auto_trains_in_fp32_on_a_cpu_and_explicit_choices_stand():
    assert training_settings(Settings(precision="auto"), "cpu").precision == "fp32"
    assert training_settings(Settings(precision="bf16"), "cpu").precision == "bf16"
    assert training_settings(Settings(precision="auto"), "cuda").precision == "auto"
