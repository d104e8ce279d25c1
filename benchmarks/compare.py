"""Same-run speed comparison of ``stdp-plugins train``: this working tree against a git revision.

    python benchmarks/compare.py 34ed0fb --rounds 3            # 1,000 digits, one epoch per layer
    python benchmarks/compare.py 34ed0fb --default-data         # the default run (embedded data)
    python benchmarks/compare.py 34ed0fb --limit 2000 --extra "--svm-max-iter 1"   # phases only

(A barely trained network's features are nearly all on and the read-out can then take
minutes; ``--svm-max-iter 1`` keeps it short when only the phases' images/s matter.)

The revision ``REV`` is exported with ``git archive`` into a temporary folder; each tree runs
``python -m stdp_plugins train`` from its own folder (so it imports its own package) with its
own native-library cache (``STDP_PLUGINS_CACHE``), so each C library is built from that tree's
sources and the two never share a cached build. The runs alternate (this, REV, REV, this, ...)
for ``--rounds`` rounds on the same digits and arguments, because the machine may be shared
and loaded: a load spike then hits both sides of a round alike.

Printed JSON: for every tree the median over the rounds of each figure of its ``metrics.json``
(images/s of every phase, read-out fit seconds, wall seconds, peak RSS, accuracy), and per
figure the ratio this / REV as the median of the per-round ratios (images/s: > 1 is faster;
seconds and MiB: < 1 is better).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]


def export_revision(rev: str, target: Path) -> str:
    """Write the files of git revision ``rev`` into ``target``; returns the full commit id."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                            check=True, capture_output=True, text=True).stdout.strip()
    target.mkdir(parents=True)
    archive = target.with_suffix(".tar")
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), commit], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    archive.unlink()
    return commit


def figures(metrics: Dict) -> Dict[str, float]:
    """The compared numbers of one ``metrics.json``: every phase's images/s and the totals."""
    out = {f"{phase}_images_per_second": value
           for phase, value in metrics.get("images_per_second", {}).items() if isinstance(value, (int, float))}
    for key in ("readout_fit_seconds", "wall_time_seconds", "peak_rss_mib"):
        if isinstance(metrics.get(key), (int, float)):
            out[key] = metrics[key]
    wall = metrics.get("wall_time_seconds")
    if isinstance(wall, (int, float)) and isinstance(metrics.get("readout_fit_seconds"), (int, float)):
        out["readout_fit_share_of_wall"] = metrics["readout_fit_seconds"] / wall
    for split, value in metrics.get("accuracy", {}).items():
        out[f"accuracy_{split}"] = value
    return out


def _env(tree: Path, cache: Path, threads: Optional[int] = None) -> Dict[str, str]:
    env = dict(os.environ, STDP_PLUGINS_CACHE=str(cache), PYTHONPATH=str(tree))
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def build_library(tree: Path, cache: Path) -> None:
    """Compile ``tree``'s native library into its own ``cache`` (outside the timed runs)."""
    code = ("import stdp_plugins.backends._native as n; "
            f"assert n.__file__.startswith({str(tree)!r}), n.__file__; "
            "assert n.native_library() is not None, n.native_status()")
    subprocess.run([sys.executable, "-c", code], cwd=tree, env=_env(tree, cache), check=True)


def run_tree(tree: Path, cache: Path, out: Path, train_args: List[str], threads: Optional[int]) -> Dict[str, float]:
    """Run ``stdp-plugins train`` of ``tree`` once; returns :func:`figures` of its metrics and
    the wall time seen from outside (process start included)."""
    env = _env(tree, cache, threads)
    command = [sys.executable, "-c",
               "import sys, stdp_plugins.cli as c; "
               f"assert c.__file__.startswith({str(tree)!r}), c.__file__; sys.exit(c.main(sys.argv[1:]))",
               "train", "--out", str(out), "--no-progress", *train_args]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"train failed in {tree} (exit {result.returncode}):\n{result.stderr[-3000:]}")
    values = figures(json.loads((out / "metrics.json").read_text()))
    values["process_seconds"] = seconds
    return values


def summary(runs: Dict[str, List[Dict[str, float]]]) -> Dict:
    """Medians per tree and the median of the per-round ratios this / REV."""
    medians = {name: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
               for name, rounds in runs.items()}
    keys = [k for k in runs["this"][0] if k in runs["rev"][0]]
    ratios = {key: round(statistics.median(a[key] / b[key] for a, b in zip(runs["this"], runs["rev"]) if b[key]), 3)
              for key in keys}
    return {"median": {n: {k: round(v, 4) for k, v in m.items()} for n, m in medians.items()},
            "ratio_this_over_rev": ratios}


def main(argv: Optional[List[str]] = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rev", help="git revision to compare against (e.g. 34ed0fb)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: %(default)s)")
    p.add_argument("--limit", type=int, default=1000, help="training digits (default: %(default)s)")
    p.add_argument("--test-limit", type=int, default=500, help="test digits (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=1, help="epochs per layer (default: %(default)s)")
    p.add_argument("--readout-shift", type=int, default=0, help="read-out shift (default: %(default)s, plain)")
    p.add_argument("--default-data", action="store_true",
                   help="run the default 'stdp-plugins train' (embedded data, default arguments) instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the runs (default: inherited)")
    p.add_argument("--extra", default="", help="further train arguments for both trees, one string")
    p.add_argument("--output", help="also write the JSON here")
    args = p.parse_args(argv)
    if args.default_data:
        train_args = ["--seed", str(args.seed)]
    else:
        train_args = ["--limit", str(args.limit), "--test-limit", str(args.test_limit), "--epochs", str(args.epochs),
                      "--readout-shift", str(args.readout_shift), "--seed", str(args.seed)]
    train_args += args.extra.split()
    with tempfile.TemporaryDirectory(prefix="stdp-compare-") as tmp:
        root = Path(tmp)
        commit = export_revision(args.rev, root / "rev")
        trees = {"this": REPO, "rev": root / "rev"}
        for name, tree in trees.items():  # build each tree's C library before any timing
            build_library(tree, root / f"cache-{name}")
        runs: Dict[str, List[Dict[str, float]]] = {"this": [], "rev": []}
        for round_ in range(args.rounds):
            order = ("this", "rev") if round_ % 2 == 0 else ("rev", "this")
            for name in order:
                values = run_tree(trees[name], root / f"cache-{name}", root / f"out-{name}-{round_}", train_args,
                                  args.threads)
                runs[name].append(values)
                print(f"round {round_ + 1}/{args.rounds} {name}: " + json.dumps({k: round(v, 3) for k, v in values.items()}),
                      file=sys.stderr, flush=True)
    result = {"rev": commit, "this": str(REPO), "rounds": args.rounds, "train_args": train_args, **summary(runs),
              "runs": runs}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return result


if __name__ == "__main__":
    main()
