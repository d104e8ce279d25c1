"""A straightforward one-image-at-a-time implementation of the reference network, the
yardstick of the benchmarks.

It is written the way first-spike STDP is usually written in PyTorch: each image's spike
waves ``[T, C, H, W]`` go through a dense convolution at every time step (time as the
batch dimension), neurons fire where the potential reaches the threshold, pointwise
inhibition and the k winners are found with tensor reductions and a Python loop over
winners, and the STDP update is applied winner by winner. Same semantics as the package
(the benchmarks check that both train to the same weights), none of its speed-ups.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BaselineNet"]


def _fire(pot: Tensor, threshold: float) -> Tensor:
    """Cumulative spikes ``[T, C, H, W]`` (potentials only grow)."""
    return (pot >= threshold).to(pot.dtype)


def _first_times(spikes: Tensor) -> Tensor:
    steps = spikes.shape[0]
    count = spikes.sum(dim=0)
    return torch.where(count > 0, steps - count, torch.full_like(count, math.inf))


def _pointwise_inhibition(pot: Tensor, spikes: Tensor) -> Tensor:
    """Keep, at each position, the channel that fired first (ties: highest potential at
    that step, then lowest channel); zero the others."""
    steps = spikes.shape[0]
    first = _first_times(spikes)  # [C, H, W]
    earliest = first.amin(dim=0)  # [H, W]
    step = earliest.clamp(max=steps - 1).long()
    at_step = pot.gather(0, step[None, None].expand(1, *pot.shape[1:]))[0]
    candidates = (first == earliest) & torch.isfinite(first)
    score = torch.where(candidates, at_step, torch.full_like(at_step, -math.inf))
    best = score.argmax(dim=0)
    keep = torch.zeros_like(candidates)
    keep.scatter_(0, best[None], candidates.any(dim=0, keepdim=True))
    return spikes * keep, pot * keep


def _k_winners(pot: Tensor, spikes: Tensor, k: int, radius: int) -> List[Tuple[int, int, int]]:
    """Earliest spike first (ties: higher potential), one per map, Python loop."""
    steps = spikes.shape[0]
    first = _first_times(spikes)
    step = first.clamp(max=steps - 1).nan_to_num(posinf=steps - 1).long()
    at_step = pot.gather(0, step[None]).squeeze(0)
    fired = torch.isfinite(first)
    # rank: earlier time first, then higher potential
    big = float(at_step.abs().max()) + 1.0
    score = torch.where(fired, (steps - first) * big + at_step, torch.zeros_like(at_step))
    winners = []
    channels, height, width = score.shape
    for _ in range(k):
        value, index = score.view(-1).max(0)
        if float(value) <= 0:
            break
        c, rem = divmod(int(index), height * width)
        y, x = divmod(rem, width)
        winners.append((c, y, x))
        score[c] = 0
        score[:, max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1] = 0
    return winners


class BaselineNet:
    """One image at a time, dense convolution at every time step, Python loop over winners.

    Parameters
    ----------
    weights1, weights2 : Tensor
        Initial weights (copied).
    time_steps : int
        ``T``.
    """

    def __init__(self, weights1: Tensor, weights2: Tensor, time_steps: int = 15) -> None:
        self.w1 = weights1.detach().clone().float()
        self.w2 = weights2.detach().clone().float()
        self.steps = time_steps

    def waves(self, times: Tensor) -> Tensor:
        """``[T, C, H, W]`` cumulative waves of one image's spike times."""
        return torch.stack([(times <= t).float() for t in range(self.steps)])

    def layer1(self, waves: Tensor) -> Tuple[Tensor, Tensor]:
        pot = F.conv2d(waves, self.w1, padding=2)
        return _fire(pot, 10.0), pot

    def layer2_input(self, spikes1: Tensor, inhibit: bool) -> Tensor:
        pooled = F.pad(F.max_pool2d(spikes1, 2, 2, 1), (1, 1, 1, 1))
        if not inhibit:
            return pooled
        inhibited, _ = _pointwise_inhibition(pooled, pooled)
        return inhibited

    def layer2(self, waves: Tensor) -> Tuple[Tensor, Tensor]:
        pot = F.conv2d(waves, self.w2)
        return _fire(pot, 1.0), pot

    def _stdp(self, weight: Tensor, waves_in: Tensor, spikes: Tensor, winners, k: int, pad: int,
              lr_plus: float, lr_minus: float) -> None:
        t_in = _first_times(F.pad(waves_in, (pad,) * 4))
        t_out = _first_times(spikes)
        for c, y, x in winners:
            field = t_in[:, y:y + k, x:x + k]
            potentiate = field <= t_out[c, y, x]
            w = weight[c]
            delta = torch.where(potentiate, lr_plus, -lr_minus) * w * (1 - w)
            weight[c] = (w + delta).clamp(0, 1)

    def train_layer1_image(self, times: Tensor, lr_plus: float, lr_minus: float) -> None:
        waves = self.waves(times)
        spikes, pot = self.layer1(waves)
        spikes, pot = _pointwise_inhibition(pot, spikes)
        winners = _k_winners(pot, spikes, 5, 2)
        self._stdp(self.w1, waves, spikes, winners, 5, 2, lr_plus, lr_minus)

    def train_layer2_image(self, times: Tensor) -> None:
        spikes1, _ = self.layer1(self.waves(times))
        waves2 = self.layer2_input(spikes1, inhibit=True)
        spikes, pot = self.layer2(waves2)
        spikes, pot = _pointwise_inhibition(pot, spikes)
        winners = _k_winners(pot, spikes, 8, 1)
        self._stdp(self.w2, waves2, spikes, winners, 2, 0, 0.004, 0.003)

    def features_image(self, times: Tensor) -> Tensor:
        spikes1, _ = self.layer1(self.waves(times))
        spikes2, _ = self.layer2(self.layer2_input(spikes1, inhibit=False))
        return F.max_pool2d(spikes2, 2, 2, 1).amax(dim=0)

    @staticmethod
    def encode_image(image: Tensor, kernels: Tensor, steps: int = 15) -> Tensor:
        """One image: DoG, threshold, local normalisation, then a Python sort into bins."""
        x = F.conv2d(image[None, None].float(), kernels, padding=3)[0]
        x = torch.where(x < 50, torch.zeros_like(x), x)
        mean = F.avg_pool2d(x[:, None], 17, stride=1, padding=8, count_include_pad=True)[:, 0]
        x = x / (mean + 1e-12)
        flat = x.flatten()
        values, order = torch.sort(flat, descending=True, stable=True)
        count = int((values > 0).sum())
        times = torch.full_like(flat, math.inf)
        for rank in range(count):
            times[order[rank]] = float(rank * steps // count)
        return times.view_as(x)
