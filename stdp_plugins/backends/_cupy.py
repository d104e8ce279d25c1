"""Launcher of the mean STDP kernel (``cuda/fused_stdp.cu``), the ``cupy`` backend of the
mean STDP update, and what the STDP launchers share.

The kernel runs through :func:`._cuda_kernels.launch`: on CUDA tensors with CuPy (compiled
once per device with ``cupy.RawModule``, on torch's current stream, no synchronisation;
tensors are shared with torch through DLPack), on CPU tensors with the host build of the
same source (the tests' way of checking it without a GPU).

CuPy is imported lazily: this module imports, and :func:`cupy_available` answers, on
machines without CuPy or without a GPU.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import Tensor

from ..learning.stdp import STDPConfig, STDPVariant
from ._cuda_kernels import KERNELS, cuda_source, cupy_available, launch

__all__ = [
    "KERNEL_FILE",
    "KERNEL_NAME",
    "cupy_available",
    "kernel_source",
    "launch_fused_update",
    "launch_plan",
    "geometry_arguments",
    "rate_arguments",
    "stdp_arrays",
]

KERNEL_NAME = "fused_stdp_update"
"""The ``extern "C"`` entry point of the mean update."""

KERNEL_FILE = KERNELS[KERNEL_NAME].file
"""File name of its CUDA source inside ``stdp_plugins/backends/cuda``."""

THREADS_PER_BLOCK = 256
"""Block size; a multiple of 32 (the kernel's warp ballots need full warps)."""

POSITIONS_PER_THREAD = 4
"""Output positions each thread scans; sets how many blocks share one channel."""

_MAX_GRID_Y = 65535

LearningRate = Union[float, Tensor]


def kernel_source(kernel: str = KERNEL_NAME) -> str:
    """The CUDA source of one kernel, read from the installed package.

    Parameters
    ----------
    kernel : str
        Its entry point: ``"fused_stdp_update"`` (the mean update, the default),
        ``"sequential_stdp_update"``, ``"select_winners_walk"``, ``"first_spike_times"`` or
        ``"first_spike_conv"``.

    Raises
    ------
    ValueError
        For another name.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(map(repr, KERNELS))}, got {kernel!r}")
    return cuda_source(KERNELS[kernel].file)


def rate_arguments(lr_plus: LearningRate, lr_minus: LearningRate, device: torch.device) -> Dict[str, Any]:
    """The learning-rate arguments of the STDP kernels: ``s = a+ + a-`` and ``m = a-``.

    Python floats travel as kernel scalars (``s`` summed in float64 and rounded once to
    float32, like torch's ``(a+ + a-) * fraction``); when either rate is a tensor, ``[s, m]``
    is computed by torch on the device (no synchronisation) and passed as an array.

    Returns
    -------
    dict
        ``learning_rates`` (the float32 ``[s, m]`` tensor, or ``None``), ``use_learning_rates``,
        ``rate_sum`` and ``lr_minus`` (the scalars, 0 when the tensor is used).
    """
    if not isinstance(lr_plus, Tensor) and not isinstance(lr_minus, Tensor):
        return {"learning_rates": None, "use_learning_rates": False, "rate_sum": float(lr_plus + lr_minus),
                "lr_minus": float(lr_minus)}
    rate_sum = torch.as_tensor(lr_plus + lr_minus).detach().reshape(1)
    rates = torch.cat([rate_sum.to(device=device, dtype=torch.float32),
                       torch.as_tensor(lr_minus).detach().reshape(1).to(device=device, dtype=torch.float32)])
    return {"learning_rates": rates, "use_learning_rates": True, "rate_sum": 0.0, "lr_minus": 0.0}


def geometry_arguments(weights_shape: Tuple[int, ...], pre_shape: Tuple[int, ...], post_shape: Tuple[int, ...],
                       stride: int, padding: int) -> Dict[str, int]:
    """The convolution geometry parameters shared by the STDP kernels."""
    _, c_in, kernel_size, _ = weights_shape
    batch, _, height, width = pre_shape
    _, _, out_height, out_width = post_shape
    return {"batch": batch, "in_channels": c_in, "height": height, "width": width, "out_height": out_height,
            "out_width": out_width, "kernel_size": kernel_size, "stride": stride, "padding": padding}


def launch_plan(
    weights_shape: Tuple[int, ...],
    pre_shape: Tuple[int, ...],
    post_shape: Tuple[int, ...],
    config: STDPConfig,
    lr_plus: Optional[float],
    lr_minus: Optional[float],
    stride: int,
    padding: int,
    use_mask: bool,
) -> Tuple[Tuple[int, int], Dict[str, Any]]:
    """Grid and scalar kernel arguments of one launch of the mean kernel (everything but the arrays).

    Parameters
    ----------
    weights_shape, pre_shape, post_shape : tuple of int
        ``[C_out, C_in, k, k]``, ``[N, C_in, H, W]`` and ``[N, C_out, H_out, W_out]``.
    config : STDPConfig
        Variant and weight bounds.
    lr_plus, lr_minus : float or None
        Scalar learning rates, or ``None`` when they travel as a device tensor.
    stride, padding : int
        Geometry of the convolution.
    use_mask : bool
        Whether a winner mask is passed.

    Returns
    -------
    grid : tuple of int
        ``(C_out, G)``: one block row per output channel, ``G`` blocks sharing its positions.
    scalars : dict
        The non-pointer parameters of the kernel by name.
    """
    batch, _, out_height, out_width = post_shape
    positions = batch * out_height * out_width
    blocks = min(_MAX_GRID_Y, max(1, math.ceil(positions / (THREADS_PER_BLOCK * POSITIONS_PER_THREAD))))
    use_rate_tensor = lr_plus is None or lr_minus is None
    rates = rate_arguments(0.0 if use_rate_tensor else lr_plus, 0.0 if use_rate_tensor else lr_minus, torch.device("cpu"))
    scalars = {
        "use_mask": use_mask,
        "use_learning_rates": use_rate_tensor,
        "rate_sum": rates["rate_sum"],
        "lr_minus": rates["lr_minus"],
        "weight_min": config.weight_min,
        "weight_max": config.weight_max,
        "multiplicative": config.variant is STDPVariant.MULTIPLICATIVE,
        **geometry_arguments(weights_shape, pre_shape, post_shape, stride, padding),
    }
    return (weights_shape[0], blocks), scalars


def stdp_arrays(weights: Tensor, pre_spike_times: Tensor, post_spike_times: Tensor, winner_mask: Optional[Tensor],
                rates: Optional[Tensor]) -> Dict[str, Tensor]:
    """The contiguous arrays of an STDP launch; an unused pointer gets a valid read-only
    array that the kernel never reads (CuPy does not turn ``None`` into a null pointer)."""
    pre = pre_spike_times.detach().to(torch.float32).contiguous()
    post = post_spike_times.detach().to(torch.float32).contiguous()
    mask = None if winner_mask is None else winner_mask.detach().to(torch.bool).contiguous().view(torch.uint8)
    return {"pre_times": pre, "post_times": post, "winner_mask": pre if mask is None else mask,
            "learning_rates": pre if rates is None else rates}


def launch_fused_update(
    weights: Tensor,
    pre_spike_times: Tensor,
    post_spike_times: Tensor,
    winner_mask: Optional[Tensor],
    config: STDPConfig,
    lr_plus: LearningRate,
    lr_minus: LearningRate,
    stride: int,
    padding: int,
) -> Tensor:
    """Run the mean update's kernel (validated by the caller) on CUDA tensors, or on CPU
    tensors through the host build.

    Parameters
    ----------
    weights : Tensor
        float32 ``[C_out, C_in, k, k]``; updated in place.
    pre_spike_times, post_spike_times : Tensor
        ``[N, C_in, H, W]`` and ``[N, C_out, H_out, W_out]`` spike times (cast to float32).
    winner_mask : Tensor or None
        Shaped like ``post_spike_times``; non-zero entries are winners. ``None``: every
        finite post time wins.
    config : STDPConfig
        Variant and weight bounds.
    lr_plus, lr_minus : float or Tensor
        Learning rates; 0-dim tensors are read on the device (no synchronisation).
    stride, padding : int
        Geometry of the convolution.

    Returns
    -------
    Tensor
        float32 ``[C_out]``, the per-channel convergence of the updated weights.
    """
    device = weights.device
    c_out, c_in, kernel_size, _ = weights.shape
    target = weights.detach()
    work = target if target.is_contiguous() else target.contiguous()
    rates = rate_arguments(lr_plus, lr_minus, device)
    arrays = stdp_arrays(weights, pre_spike_times, post_spike_times, winner_mask, rates["learning_rates"])
    scalar_rates = not rates["use_learning_rates"]
    grid, scalars = launch_plan(
        tuple(weights.shape), tuple(arrays["pre_times"].shape), tuple(arrays["post_times"].shape), config,
        lr_plus if scalar_rates else None, lr_minus if scalar_rates else None, stride, padding,
        winner_mask is not None,
    )
    convergence = torch.empty(c_out, dtype=torch.float32, device=device)
    workspace = torch.zeros(c_out * (c_in * kernel_size * kernel_size + 2), dtype=torch.int32, device=device)
    launch(KERNELS[KERNEL_NAME], grid, (THREADS_PER_BLOCK,),
           {**arrays, **scalars, "weights": work, "convergence": convergence, "workspace": workspace})
    if work is not target:
        target.copy_(work)
    return convergence
