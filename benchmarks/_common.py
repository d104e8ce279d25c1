"""Shared pieces of the benchmark scripts: data, trained weights, timing, JSON output.

Every phase is timed for the package's path and, in the same run, for the one-image-at-a-
time baseline of :mod:`baseline`; results are images per second and their ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Dict

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baseline import BaselineNet  # noqa: E402

from stdp_plugins.datasets import embedded_split  # noqa: E402
from stdp_plugins.models.kheradpisheh import KheradpishehNet  # noqa: E402
from stdp_plugins.training import LayerwiseTrainer, TrainConfig  # noqa: E402


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--images", type=int, default=2048, help="images for the package's path")
    p.add_argument("--baseline-images", type=int, default=200, help="images for the baseline")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    return p


def setup(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)


def train_images():
    (images, _), _ = embedded_split()
    return images


def trained_net(layers: int = 2, seed: int = 0) -> KheradpishehNet:
    """A network trained briefly on the embedded digits (representative spike densities)."""
    net = KheradpishehNet(seed=seed)
    epochs = (1, 1) if layers == 2 else (1, 0)
    LayerwiseTrainer(net, train_images()[:3000], TrainConfig(epochs=epochs, progress=False, checkpoint_every=0,
                                                                stop_at_convergence=False)).train()
    return net


def rate(fn: Callable[[], int], repeat: int = 1) -> float:
    """Images per second of ``fn`` (which returns the number of images it processed)."""
    best = math.inf
    count = 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - start)
    return count / best


def report(phase: str, ours: float, baseline: float, args: argparse.Namespace, **extra) -> Dict:
    result = {
        "phase": phase,
        "ours_images_per_second": round(ours, 1),
        "baseline_images_per_second": round(baseline, 1),
        "ratio": round(ours / baseline, 2),
        "images": args.images,
        "baseline_images": args.baseline_images,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        **extra,
    }
    print(json.dumps(result))
    return result


__all__ = ["BaselineNet", "KheradpishehNet", "TrainConfig", "parser", "setup", "train_images", "trained_net", "rate", "report"]
