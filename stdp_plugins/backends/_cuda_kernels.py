"""The CUDA kernels of ``cuda/`` and one way to launch them, on a GPU or on the CPU.

Each kernel is described once, by its file, its ``extern "C"`` entry point and its
parameter list (:class:`Kernel`). :func:`launch` runs it on the device of the tensors it
is given: CUDA tensors go through CuPy (the source compiled once per device with
``cupy.RawModule``, NVRTC, on torch's current stream, without synchronising); CPU tensors
go through the host build of the same sources (:mod:`._cuda_host`, compiled by the C++
compiler with a shim that maps the CUDA execution model onto loops). The launchers of
:mod:`._cupy` and :mod:`._cupy_ops` are therefore tested on every machine, with the very
launch plans and arguments the GPU runs.

CuPy is imported lazily: this module imports on machines without CuPy or a GPU.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any, Dict, Tuple

import torch

__all__ = ["KERNELS", "Kernel", "NVRTC_OPTIONS", "cuda_source", "cupy_available", "launch", "ordered_arguments"]

NVRTC_OPTIONS: Tuple[str, ...] = ("--fmad=false",)
"""Compiler options of every kernel: no fused multiply-add, so that each multiply and add
rounds like torch's separate operations (the host build uses ``-ffp-contract=off``)."""

@dataclass(frozen=True)
class Kernel:
    """One kernel of ``stdp_plugins/backends/cuda``.

    Attributes
    ----------
    file : str
        The ``.cu`` file.
    name : str
        Its ``extern "C" __global__`` entry point.
    parameters : tuple of (str, str)
        The entry point's parameters in order, as ``(name, kind)``, kind one of
        ``pointer``, ``int``, ``long``, ``float``, ``double``. Tests check them against
        the declaration and the compiled PTX.
    """

    file: str
    name: str
    parameters: Tuple[Tuple[str, str], ...]


def _parameters(text: str) -> Tuple[Tuple[str, str], ...]:
    """``"a:pointer b:int"`` to ``(("a", "pointer"), ("b", "int"))``."""
    return tuple((name, kind) for name, kind in (item.split(":") for item in text.split()))


_STDP_GEOMETRY = "batch:int in_channels:int height:int width:int out_height:int out_width:int kernel_size:int " \
                 "stride:int padding:int"

KERNELS: Dict[str, Kernel] = {
    "fused_stdp_update": Kernel("fused_stdp.cu", "fused_stdp_update", _parameters(
        "weights:pointer convergence:pointer workspace:pointer pre_times:pointer post_times:pointer "
        "winner_mask:pointer learning_rates:pointer use_mask:int use_learning_rates:int rate_sum:float "
        "lr_minus:float weight_min:float weight_max:float multiplicative:int " + _STDP_GEOMETRY)),
    "sequential_stdp_update": Kernel("sequential_stdp.cu", "sequential_stdp_update", _parameters(
        "weights:pointer workspace:pointer pre_times:pointer post_times:pointer winner_mask:pointer "
        "learning_rates:pointer use_mask:int use_learning_rates:int rate_sum:float lr_minus:float "
        "weight_min:float weight_max:float multiplicative:int " + _STDP_GEOMETRY)),
    "select_winners_walk": Kernel("select_winners.cu", "select_winners_walk", _parameters(
        "winner_mask:pointer workspace:pointer times:pointer potentials:pointer use_potentials:int "
        "pointwise:int mode:int radius:int k_winners:int channels:int height:int width:int")),
    "first_spike_times": Kernel("first_spike_times.cu", "first_spike_times", _parameters(
        "times:pointer value:pointer spikes:pointer values:pointer use_values:int cumulative:int steps:int "
        "neurons:long")),
    "first_spike_conv": Kernel("first_spike_conv.cu", "first_spike_conv", _parameters(
        "times_out:pointer potentials_out:pointer in_times:pointer weight:pointer threshold:double "
        "use_potentials:int batch:int in_channels:int height:int width:int out_channels:int kernel_size:int "
        "padding:int steps:int")),
}
"""Every kernel, by entry point."""


@functools.lru_cache(maxsize=None)
def cupy_available() -> bool:
    """Return whether CuPy can be imported (cached; says nothing about a GPU)."""
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


def cuda_source(file: str) -> str:
    """The text of one file of ``stdp_plugins/backends/cuda``, from the installed package."""
    return resources.files(__package__).joinpath("cuda", file).read_text(encoding="utf-8")


def ordered_arguments(kernel: Kernel, values: Dict[str, Any]) -> Tuple[Tuple[str, Any], ...]:
    """``values`` in the order of ``kernel.parameters``, as ``(kind, value)`` pairs.

    Raises
    ------
    ValueError
        If the names are not exactly the kernel's parameters.
    """
    expected = {name for name, _ in kernel.parameters}
    if set(values) != expected:
        raise ValueError(
            f"values must name exactly the parameters of {kernel.name}; missing {sorted(expected - set(values))}, "
            f"unknown {sorted(set(values) - expected)}"
        )
    return tuple((kind, values[name]) for name, kind in kernel.parameters)


@functools.lru_cache(maxsize=None)
def _compiled(file: str, name: str, device_index: int) -> Any:
    """One kernel compiled for one device (NVRTC on first use, then cached; CuPy also
    keeps the binary in its on-disk cache)."""
    import cupy

    with cupy.cuda.Device(device_index):
        return cupy.RawModule(code=cuda_source(file), options=NVRTC_OPTIONS).get_function(name)


def _launch_cupy(kernel: Kernel, grid: Tuple[int, ...], block: Tuple[int, ...],
                 arguments: Tuple[Tuple[str, Any], ...], device: torch.device) -> None:
    import cupy
    import numpy

    scalar = {"int": numpy.int32, "long": numpy.int64, "float": numpy.float32, "double": numpy.float64}
    with cupy.cuda.Device(device.index):
        function = _compiled(kernel.file, kernel.name, device.index)
        stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream, device.index)
        with stream:
            args = tuple(cupy.from_dlpack(value.detach()) if kind == "pointer" else scalar[kind](value)
                         for kind, value in arguments)
            function(grid, block, args, stream=stream)


def launch(kernel: Kernel, grid: Tuple[int, ...], block: Tuple[int, ...], values: Dict[str, Any]) -> None:
    """Run ``kernel`` on the device of its tensor arguments.

    Parameters
    ----------
    kernel : Kernel
        One of :data:`KERNELS`.
    grid, block : tuple of int
        Launch dimensions (up to three each).
    values : dict
        One value per parameter, by name: contiguous tensors for pointers (all on one
        device; unused pointers get any tensor of that device), numbers or bools for the
        scalars.

    Raises
    ------
    RuntimeError
        When the host build fails or a collective of the host run cannot complete.
    """
    arguments = ordered_arguments(kernel, values)
    tensors = [value for kind, value in arguments if kind == "pointer"]
    device = tensors[0].device
    if any(t.device != device or not t.is_contiguous() for t in tensors):
        raise ValueError(f"{kernel.name} needs contiguous tensors on one device")
    grid = tuple(grid) + (1,) * (3 - len(grid))
    block = tuple(block) + (1,) * (3 - len(block))
    if device.type == "cuda":
        _launch_cupy(kernel, grid, block, arguments, device)
        return
    from ._cuda_host import launch_on_host

    launch_on_host(kernel, grid, block, arguments)
