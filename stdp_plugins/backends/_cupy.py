"""CuPy launcher of the fused STDP kernel (``cuda/fused_stdp.cu``), the ``cupy`` backend of
the mean STDP update.

The CUDA source ships inside the package and is compiled once per device with
``cupy.RawModule`` (NVRTC; CuPy also caches the binary on disk). Tensors are shared with
torch without copies through DLPack, and the kernel runs on torch's current CUDA stream,
so it is ordered with the surrounding torch work and needs no synchronisation.

CuPy is imported lazily: this module imports, and :func:`cupy_available` answers, on
machines without CuPy or without a GPU.
"""

from __future__ import annotations

import functools
import math
from importlib import resources
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import Tensor

from ..learning.stdp import STDPConfig, STDPVariant

__all__ = [
    "KERNEL_FILE",
    "KERNEL_NAME",
    "KERNEL_PARAMETERS",
    "cupy_available",
    "kernel_arguments",
    "kernel_source",
    "launch_fused_update",
    "launch_plan",
]

KERNEL_FILE = "fused_stdp.cu"
"""File name of the CUDA source inside ``stdp_plugins/backends/cuda``."""

KERNEL_NAME = "fused_stdp_update"
"""The ``extern "C"`` entry point in :data:`KERNEL_FILE`."""

KERNEL_PARAMETERS: Tuple[Tuple[str, str], ...] = (
    ("weights", "pointer"),
    ("convergence", "pointer"),
    ("workspace", "pointer"),
    ("pre_times", "pointer"),
    ("post_times", "pointer"),
    ("winner_mask", "pointer"),
    ("learning_rates", "pointer"),
    ("use_mask", "int"),
    ("use_learning_rates", "int"),
    ("lr_plus", "float"),
    ("lr_minus", "float"),
    ("weight_min", "float"),
    ("weight_max", "float"),
    ("multiplicative", "int"),
    ("batch", "int"),
    ("in_channels", "int"),
    ("height", "int"),
    ("width", "int"),
    ("out_height", "int"),
    ("out_width", "int"),
    ("kernel_size", "int"),
    ("stride", "int"),
    ("padding", "int"),
)
"""The kernel's parameters in order, as ``(name, kind)`` with kind ``pointer`` (a device
array), ``int`` (C ``int``) or ``float`` (C ``float``). The launcher builds its argument
list from this table; a test checks it against the compiled PTX."""

THREADS_PER_BLOCK = 256
"""Block size; a multiple of 32 (the kernel's warp ballots need full warps)."""

POSITIONS_PER_THREAD = 4
"""Output positions each thread scans; sets how many blocks share one channel."""

_MAX_GRID_Y = 65535

LearningRate = Union[float, Tensor]


@functools.lru_cache(maxsize=None)
def cupy_available() -> bool:
    """Return whether CuPy can be imported (cached; says nothing about a GPU)."""
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


def kernel_source() -> str:
    """The CUDA source of the fused update, read from the installed package."""
    return resources.files(__package__).joinpath("cuda", KERNEL_FILE).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def _compiled_kernel(device_index: int) -> Any:
    """The kernel compiled for one device (compiled on first use, then cached)."""
    import cupy

    with cupy.cuda.Device(device_index):
        module = cupy.RawModule(code=kernel_source())
        return module.get_function(KERNEL_NAME)


def kernel_arguments(values: Dict[str, Any]) -> Tuple[Any, ...]:
    """Order ``values`` by :data:`KERNEL_PARAMETERS` and give scalars their C types.

    Parameters
    ----------
    values : dict
        One value per kernel parameter, by name: arrays for pointers, numbers (or bools)
        for ``int`` and ``float`` parameters.

    Returns
    -------
    tuple
        The argument tuple for the launch (``numpy.int32`` / ``numpy.float32`` scalars).

    Raises
    ------
    ValueError
        If the names are not exactly the kernel's parameters.
    """
    import numpy

    expected = {name for name, _ in KERNEL_PARAMETERS}
    if set(values) != expected:
        raise ValueError(
            f"values must name exactly the kernel's parameters; missing {sorted(expected - set(values))}, "
            f"unknown {sorted(set(values) - expected)}"
        )
    convert = {"pointer": lambda v: v, "int": numpy.int32, "float": numpy.float32}
    return tuple(convert[kind](values[name]) for name, kind in KERNEL_PARAMETERS)


def _learning_rate_tensor(lr_plus: LearningRate, lr_minus: LearningRate, device: torch.device) -> Optional[Tensor]:
    """``[a+, a-]`` as a float32 device tensor when either rate is a tensor, else ``None``
    (python floats travel as kernel scalars, without a host-to-device copy)."""
    if not isinstance(lr_plus, Tensor) and not isinstance(lr_minus, Tensor):
        return None
    rates = [torch.as_tensor(v, dtype=torch.float32, device=device) for v in (lr_plus, lr_minus)]
    return torch.stack(rates).detach()


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
    """Grid and scalar kernel arguments of one launch (everything but the arrays).

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
        The non-pointer parameters of :data:`KERNEL_PARAMETERS` by name.
    """
    c_out, c_in, kernel_size, _ = weights_shape
    batch, _, height, width = pre_shape
    _, _, out_height, out_width = post_shape
    positions = batch * out_height * out_width
    blocks = min(_MAX_GRID_Y, max(1, math.ceil(positions / (THREADS_PER_BLOCK * POSITIONS_PER_THREAD))))
    use_rate_tensor = lr_plus is None or lr_minus is None
    scalars = {
        "use_mask": use_mask,
        "use_learning_rates": use_rate_tensor,
        "lr_plus": 0.0 if use_rate_tensor else lr_plus,
        "lr_minus": 0.0 if use_rate_tensor else lr_minus,
        "weight_min": config.weight_min,
        "weight_max": config.weight_max,
        "multiplicative": config.variant is STDPVariant.MULTIPLICATIVE,
        "batch": batch,
        "in_channels": c_in,
        "height": height,
        "width": width,
        "out_height": out_height,
        "out_width": out_width,
        "kernel_size": kernel_size,
        "stride": stride,
        "padding": padding,
    }
    return (c_out, blocks), scalars


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
    """Run the fused update on CUDA tensors (validated by the caller).

    Parameters
    ----------
    weights : Tensor
        float32 ``[C_out, C_in, k, k]`` on a CUDA device; updated in place.
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
    import cupy

    device = weights.device
    c_out, c_in, kernel_size, _ = weights.shape
    target = weights.detach()
    work = target if target.is_contiguous() else target.contiguous()
    pre = pre_spike_times.detach().to(torch.float32).contiguous()
    post = post_spike_times.detach().to(torch.float32).contiguous()
    mask = None if winner_mask is None else winner_mask.detach().to(torch.bool).contiguous().view(torch.uint8)
    rates = _learning_rate_tensor(lr_plus, lr_minus, device)
    convergence = torch.empty(c_out, dtype=torch.float32, device=device)
    workspace = torch.zeros(c_out * (c_in * kernel_size * kernel_size + 2), dtype=torch.int32, device=device)
    grid, scalars = launch_plan(
        tuple(weights.shape), tuple(pre.shape), tuple(post.shape), config,
        None if rates is not None else lr_plus, None if rates is not None else lr_minus,
        stride, padding, mask is not None,
    )

    with cupy.cuda.Device(device.index):
        kernel = _compiled_kernel(device.index)
        stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream, device.index)
        with stream:
            arrays = {
                "weights": cupy.from_dlpack(work),
                "convergence": cupy.from_dlpack(convergence),
                "workspace": cupy.from_dlpack(workspace),
                "pre_times": cupy.from_dlpack(pre),
                "post_times": cupy.from_dlpack(post),
            }
            # Unused pointer parameters get a valid read-only array; the kernel never reads
            # them (CuPy does not turn None into a null pointer).
            arrays["winner_mask"] = arrays["pre_times"] if mask is None else cupy.from_dlpack(mask)
            arrays["learning_rates"] = arrays["pre_times"] if rates is None else cupy.from_dlpack(rates)
            kernel(grid, (THREADS_PER_BLOCK,), kernel_arguments({**arrays, **scalars}), stream=stream)
    if work is not target:
        target.copy_(work)
    return convergence
