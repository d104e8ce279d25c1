"""The adapter benchmark runs and reports what it measures (its figures are not asserted:
speed goals live in the benchmark's JSON, not in tests)."""

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def test_bench_adapters_reports_each_model_as_a_ratio():
    spec = importlib.util.spec_from_file_location("bench_adapters", ROOT / "benchmarks" / "bench_adapters.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        results = bench.main(["--batch-size", "4", "--batches", "2", "--rounds", "1", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert [(r["framework"], r["neuron"]) for r in results] == [
        ("spikingjelly", "fire-once IF (paper)"), ("spikingjelly", "IFNode"),
        ("snntorch", "fire-once IF (paper)"), ("snntorch", "snn.Leaky(beta=1)"),
    ]
    for r in results:
        ratio = r["forward_and_apply_seconds_per_batch"] / r["forward_seconds_per_batch"]
        assert r["ratio"] == pytest.approx(ratio, abs=2e-3) and r["ratio"] > 0
        assert r["updates"] == 4 and r["reduction"] == "sequential" and r["time_steps"] == 15
