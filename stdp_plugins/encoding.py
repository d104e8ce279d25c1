"""Input coding of Kheradpisheh et al. (2018): DoG filtering, local normalisation and
intensity-to-latency coding into cumulative spike waves.

The pipeline, batched over images, is

1. :func:`dog_kernels` / :func:`dog_filter`: on-centre and off-centre difference-of-Gaussian
   filters on the image in ``[0, 255]``; responses below ``threshold`` are set to 0.
2. :func:`local_normalization`: each channel divided by its mean over a
   ``(2r+1) x (2r+1)`` window (SpykeTorch's ``local_normalization``).
3. :func:`intensity_to_latency`: the non-zero values of each image are ranked in
   descending order and split into ``time_steps`` equal bins; a value's bin is its spike
   time (stronger responses fire earlier). Zeros never fire (``inf``).
4. :func:`spike_waves`: first-spike times to cumulative spike waves ``[T, N, C, H, W]``
   (a pixel that fired stays 1 for the remaining steps), the layout SpikingJelly calls
   multi-step; or :func:`spike_events`: to spike events (a pixel is 1 only at its
   first-spike step), the input of models of fire-once neurons such as
   :class:`stdp_plugins.spikingjelly.FireOnceIFNode`.

:class:`DoGLatencyEncoder` chains the four steps as an ``nn.Module``.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .learning._checks import check_float, check_int, check_not_nan, check_tensor

__all__ = [
    "dog_kernels",
    "dog_filter",
    "local_normalization",
    "intensity_to_latency",
    "spike_waves",
    "spike_events",
    "encode_images",
    "DoGLatencyEncoder",
]

#: SpykeTorch's Kheradpisheh MNIST filters: on-centre (1, 2) and off-centre (2, 1).
DEFAULT_SIGMAS: Tuple[Tuple[float, float], ...] = ((1.0, 2.0), (2.0, 1.0))


def dog_kernels(
    size: int = 7,
    sigmas: Sequence[Tuple[float, float]] = DEFAULT_SIGMAS,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Difference-of-Gaussian kernels, each made zero-mean and divided by its maximum.

    Parameters
    ----------
    size : int
        Odd window size ``k``.
    sigmas : sequence of (float, float)
        ``(sigma1, sigma2)`` per kernel; ``sigma1 < sigma2`` gives an on-centre kernel,
        ``sigma1 > sigma2`` an off-centre one.
    dtype : torch.dtype
        Floating dtype of the result.

    Returns
    -------
    Tensor
        ``[len(sigmas), 1, k, k]``, ready for :func:`torch.nn.functional.conv2d`.
    """
    size = check_int("size", size, minimum=1)
    if size % 2 == 0:
        raise ValueError(f"size must be odd, got {size}")
    if not isinstance(sigmas, (list, tuple)) or len(sigmas) == 0:
        raise ValueError(f"sigmas must be a non-empty sequence of (sigma1, sigma2) pairs, got {sigmas!r}")
    half = size // 2
    coords = torch.arange(-half, half + 1, dtype=torch.float64)
    radius2 = coords[:, None] ** 2 + coords[None, :] ** 2
    kernels = []
    for i, pair in enumerate(sigmas):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"sigmas[{i}] must be a (sigma1, sigma2) pair, got {pair!r}")
        s1 = check_float(f"sigmas[{i}][0]", pair[0], minimum=0.0, strict_min=True)
        s2 = check_float(f"sigmas[{i}][1]", pair[1], minimum=0.0, strict_min=True)
        if s1 == s2:
            raise ValueError(f"sigmas[{i}] must hold two different sigmas, got {pair!r}")
        g1 = torch.exp(-0.5 * radius2 / s1**2) / s1**2
        g2 = torch.exp(-0.5 * radius2 / s2**2) / s2**2
        dog = (g1 - g2) / (2.0 * math.pi)
        dog = dog - dog.mean()
        kernels.append(dog / dog.max())
    return torch.stack(kernels)[:, None].to(dtype)


def _as_image_batch(images: Tensor) -> Tensor:
    """``[N, H, W]`` or ``[N, 1, H, W]`` images (any real dtype) as float32 ``[N, 1, H, W]``."""
    check_tensor("images", images, (3, 4), "[N, H, W] or [N, 1, H, W]")
    if images.dim() == 4 and images.shape[1] != 1:
        raise ValueError(f"images must have one channel [N, 1, H, W], got shape {tuple(images.shape)}")
    if images.is_complex() or images.dtype == torch.bool:
        raise TypeError(f"images must be a real tensor of grey values, got dtype {images.dtype}")
    if images.is_floating_point():
        check_not_nan("images", images)
        images = images.float()
    else:
        images = images.to(torch.float32)
    return images if images.dim() == 4 else images[:, None]


def dog_filter(images: Tensor, kernels: Tensor, threshold: float = 50.0) -> Tensor:
    """Filter grey images with DoG kernels and zero the responses below ``threshold``.

    Parameters
    ----------
    images : Tensor
        ``[N, H, W]`` or ``[N, 1, H, W]`` grey values in ``[0, 255]`` (uint8 or float).
    kernels : Tensor
        ``[C, 1, k, k]`` from :func:`dog_kernels`; padding ``k // 2`` keeps the size.
    threshold : float
        Responses ``< threshold`` become 0.

    Returns
    -------
    Tensor
        Float32 ``[N, C, H, W]`` responses, 0 or ``>= threshold``.
    """
    images = _as_image_batch(images)
    check_tensor("kernels", kernels, 4, "[C, 1, k, k]")
    if kernels.shape[1] != 1 or kernels.shape[2] != kernels.shape[3] or kernels.shape[2] % 2 == 0:
        raise ValueError(f"kernels must have shape [C, 1, k, k] with odd k, got {tuple(kernels.shape)}")
    threshold = check_float("threshold", threshold)
    kernels = kernels.to(device=images.device, dtype=images.dtype)
    out = F.conv2d(images, kernels, padding=kernels.shape[-1] // 2)
    return out.masked_fill_(out < threshold, 0.0)


def local_normalization(x: Tensor, radius: int = 8, eps: float = 1e-12) -> Tensor:
    """Divide every channel by its local mean over a ``(2r+1) x (2r+1)`` window.

    The mean counts positions outside the image as zeros (zero padding), as SpykeTorch's
    ``local_normalization`` does.

    Parameters
    ----------
    x : Tensor
        ``[N, C, H, W]`` non-negative responses.
    radius : int
        Window radius ``r``.
    eps : float
        Added to the mean to avoid a division by zero.

    Returns
    -------
    Tensor
        ``[N, C, H, W]``, zero where ``x`` is zero.
    """
    check_tensor("x", x, 4, "[N, C, H, W]")
    radius = check_int("radius", radius, minimum=0)
    eps = check_float("eps", eps, minimum=0.0, strict_min=True)
    size = 2 * radius + 1
    mean = F.avg_pool2d(x, size, stride=1, padding=radius, count_include_pad=True)
    return x / (mean + eps)


def intensity_to_latency(x: Tensor, time_steps: int = 15) -> Tensor:
    """First-spike times from intensities: stronger values fire earlier.

    Per image, the non-zero entries (over all channels and positions) are ranked in
    descending order (ties by lowest flat index) and split into ``time_steps`` bins of
    equal size: the entry of rank ``r`` among ``n`` non-zero ones fires at step
    ``floor(r * time_steps / n)``. Zero entries never fire.

    Parameters
    ----------
    x : Tensor
        ``[N, ...]`` non-negative intensities.
    time_steps : int
        Number of time steps ``T``.

    Returns
    -------
    Tensor
        Float32 spike times shaped like ``x``: integers in ``[0, T)``, ``inf`` for zeros.
    """
    check_tensor("x", x)
    if x.dim() < 2:
        raise ValueError(f"x must be batched [N, ...] with at least 2 dimensions, got shape {tuple(x.shape)}")
    time_steps = check_int("time_steps", time_steps, minimum=1)
    check_not_nan("x", x)
    if bool((x < 0).any()):
        raise ValueError("x must hold non-negative intensities, got negative entries")
    n = x.shape[0]
    flat = x.reshape(n, -1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(flat.shape[1], device=x.device).expand(n, -1))
    count = (flat > 0).sum(dim=1, keepdim=True)
    steps = torch.div(rank * time_steps, count.clamp(min=1), rounding_mode="floor")
    times = torch.where(flat > 0, steps.to(torch.float32), torch.full_like(flat, math.inf, dtype=torch.float32))
    return times.view(x.shape)


def spike_waves(spike_times: Tensor, time_steps: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Cumulative spike waves from first-spike times.

    Parameters
    ----------
    spike_times : Tensor
        ``[...]`` float times (``inf`` = never).
    time_steps : int
        ``T``.
    dtype : torch.dtype
        dtype of the result (float or bool).

    Returns
    -------
    Tensor
        ``[T, ...]`` with ``out[t] = spike_times <= t``.
    """
    check_tensor("spike_times", spike_times)
    time_steps = check_int("time_steps", time_steps, minimum=1)
    steps = torch.arange(time_steps, device=spike_times.device, dtype=spike_times.dtype)
    steps = steps.view(-1, *([1] * spike_times.dim()))
    return (spike_times[None] <= steps).to(dtype)


def spike_events(spike_times: Tensor, time_steps: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Spike events from first-spike times: every input fires once, at its first-spike step.

    The input of a model whose neurons integrate spike events, e.g. the non-leaky
    fire-once IF neurons of Kheradpisheh et al. (2018)
    (:class:`stdp_plugins.spikingjelly.FireOnceIFNode`,
    :class:`stdp_plugins.snntorch.FireOnceIF`): their membrane at step ``t`` is then the
    potential of the cumulative wave :func:`spike_waves` up to ``t``.

    Parameters
    ----------
    spike_times : Tensor
        ``[...]`` float times (``inf`` = never); times outside ``[0, T)`` or not whole
        never fire.
    time_steps : int
        ``T``.
    dtype : torch.dtype
        dtype of the result (float or bool).

    Returns
    -------
    Tensor
        ``[T, ...]`` with ``out[t] = spike_times == t``.

    Examples
    --------
    >>> spike_events(torch.tensor([0.0, 2.0, math.inf]), 3).T.tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    """
    check_tensor("spike_times", spike_times)
    time_steps = check_int("time_steps", time_steps, minimum=1)
    steps = torch.arange(time_steps, device=spike_times.device, dtype=spike_times.dtype)
    steps = steps.view(-1, *([1] * spike_times.dim()))
    return (spike_times[None] == steps).to(dtype)


def encode_images(
    images: Tensor,
    time_steps: int = 15,
    kernels: Tensor | None = None,
    threshold: float = 50.0,
    normalization_radius: int = 8,
) -> Tensor:
    """Images to input first-spike times (DoG, threshold, local normalisation, latency).

    Parameters
    ----------
    images : Tensor
        ``[N, H, W]`` or ``[N, 1, H, W]`` grey values in ``[0, 255]``.
    time_steps : int
        Number of time steps ``T``.
    kernels : Tensor, optional
        DoG kernels ``[C, 1, k, k]``; default :func:`dog_kernels` ``()``.
    threshold : float
        DoG response threshold.
    normalization_radius : int
        Radius of :func:`local_normalization`.

    Returns
    -------
    Tensor
        Float32 ``[N, C, H, W]`` spike times in ``[0, T)`` or ``inf``.
    """
    if kernels is None:
        kernels = dog_kernels()
    filtered = dog_filter(images, kernels, threshold)
    return intensity_to_latency(local_normalization(filtered, normalization_radius), time_steps)


class DoGLatencyEncoder(nn.Module):
    """``nn.Module`` shell of :func:`encode_images` returning cumulative spike waves.

    Parameters
    ----------
    time_steps : int
        Number of time steps ``T`` (15 in Kheradpisheh et al.).
    kernel_size : int
        DoG window size.
    sigmas : sequence of (float, float)
        DoG sigma pairs (default on- and off-centre).
    threshold : float
        DoG response threshold.
    normalization_radius : int
        Radius of the local normalisation.

    Examples
    --------
    >>> enc = DoGLatencyEncoder()
    >>> waves = enc(torch.zeros(4, 28, 28, dtype=torch.uint8))   # [15, 4, 2, 28, 28]
    """

    def __init__(
        self,
        time_steps: int = 15,
        kernel_size: int = 7,
        sigmas: Sequence[Tuple[float, float]] = DEFAULT_SIGMAS,
        threshold: float = 50.0,
        normalization_radius: int = 8,
    ) -> None:
        super().__init__()
        self.time_steps = check_int("time_steps", time_steps, minimum=1)
        self.threshold = check_float("threshold", threshold)
        self.normalization_radius = check_int("normalization_radius", normalization_radius, minimum=0)
        self.register_buffer("kernels", dog_kernels(kernel_size, sigmas))

    def spike_times(self, images: Tensor) -> Tensor:
        """First-spike times ``[N, C, H, W]`` of ``images`` (see :func:`encode_images`)."""
        return encode_images(images, self.time_steps, self.kernels, self.threshold, self.normalization_radius)

    def forward(self, images: Tensor) -> Tensor:
        """Cumulative spike waves ``[T, N, C, H, W]`` (float32 0/1) of ``images``."""
        return spike_waves(self.spike_times(images), self.time_steps)

    def extra_repr(self) -> str:
        return (
            f"time_steps={self.time_steps}, channels={self.kernels.shape[0]}, "
            f"threshold={self.threshold}, normalization_radius={self.normalization_radius}"
        )
