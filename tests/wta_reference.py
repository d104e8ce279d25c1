"""The greedy WTA walk of docs/spec.md as a plain Python loop: the reference for the tests."""

import math

import torch

from stdp_plugins import WTAMode


def sequential_winners(times, potentials, mode, radius, k):
    """The greedy walk of docs/spec.md, one sample at a time, as a plain Python loop."""
    n, c, h, w = times.shape
    mask = torch.zeros(times.shape, dtype=torch.bool)
    for s in range(n):
        candidates = [
            (float(times[s, ci, y, x]), -float(potentials[s, ci, y, x]), (ci * h + y) * w + x, ci, y, x)
            for ci in range(c) for y in range(h) for x in range(w) if math.isfinite(times[s, ci, y, x])
        ]
        accepted = []
        for *_, ci, y, x in sorted(candidates):
            if k is not None and len(accepted) >= k:
                break
            blocked = False
            for (cj, yj, xj) in accepted:
                if mode in (WTAMode.GLOBAL, WTAMode.BOTH) and cj == ci:
                    blocked = True
                if mode in (WTAMode.LOCAL, WTAMode.BOTH) and max(abs(yj - y), abs(xj - x)) <= radius:
                    blocked = True
            if not blocked:
                accepted.append((ci, y, x))
                mask[s, ci, y, x] = True
    return mask
