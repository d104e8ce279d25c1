"""The native implementation of the first-spike convolution: the event-driven C kernel of
``csrc/first_spike_conv.c``, and the reference network's whole training step in C.

The kernel walks the input spikes of each image in time order and adds each spike's
weights to the potentials of the outputs that see it; after every time step it checks
only the outputs touched in that step. Work is proportional to the number of spikes, not
to ``time_steps x`` a dense convolution. Potentials are accumulated in float64, so the sums
of float32 weights are exact and do not depend on the order of the spikes. Inputs are
validated by the dispatchers of :mod:`.conv`.
"""

from __future__ import annotations

import ctypes
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..learning import STDPConfig, WTAMode
from ..learning._indexing import nonzero_indices
from ._native import native_library, wta_mode_bits
from .stdp import native_stdp_steps_
from ._threads import parallel_ranges, thread_scratch

__all__ = ["run_event_kernel", "event_training_step_", "run_fires_kernel", "run_pooled_survivors"]

_P, _I, _L, _D = ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_double
#: ctypes signatures of this module's C entry points beyond the library's common ones
_FIRES_SIGNATURES = {
    "fires_binary": (None, [_I, _I, _I, _I, _P, _I, _I, _I, _P, _D, _I, _I, _P, _I, _I, _I, _I, _I, _P]),
    "fires_binary_scratch": (_L, [_I] * 6),
    "pooled_survivors": (None, [_I, _I, _I, _I, _P, _I, _I, _I, _I, _I, _P, _P]),
}
#: Channels per block of ``fires_binary`` (FIRES_BLOCK in csrc/first_spike_conv.c).
_FIRES_BLOCK = 32


def run_event_kernel(
    in_times: Tensor,
    weight: Tensor,
    threshold: float,
    padding: int,
    time_steps: int,
    out_size: Tuple[int, int],
    potentials: bool,
    pointwise: bool,
    winners: Optional[Tuple[WTAMode, int, int]],
    times: bool = True,
) -> Tuple[Optional[Tensor], ...]:
    """Run the C kernel over the batch, split across the worker threads.

    Returns times (``None`` when ``times=False``) and potentials (or ``None``) as
    ``[N, C, H, W]`` views of the kernel's channel-last arrays, int32 survivors of
    pointwise inhibition ``[N, H_out, W_out]`` (or ``None``) and, when ``winners = (mode,
    radius, k)`` is given, the int32 ``[N, k]`` flat indices of the learning winners
    (``-1`` padded) and their float32 spike times.
    """
    if in_times.device.type != "cpu":
        raise ValueError(f"in_times must be on the CPU for the event-driven kernel, got {in_times.device}")
    library = native_library()
    out_h, out_w = out_size
    n, c_in, height, width = in_times.shape
    c_out, k = weight.shape[0], weight.shape[-1]
    times32 = in_times.to(torch.float32).contiguous()  # the kernel skips every time >= time_steps
    weight_t = weight.detach().to(torch.float64).permute(1, 2, 3, 0).contiguous()
    out_times = torch.empty(n, out_h, out_w, c_out, dtype=torch.float32) if times else None
    out_pot = torch.empty(n, out_h, out_w, c_out, dtype=torch.float64) if potentials else None
    out_best = torch.empty(n, out_h, out_w, dtype=torch.int32) if pointwise else None
    mode_bits, radius, k_winners = 0, 0, 0
    out_win = out_win_t = None
    if winners is not None:
        mode, radius, k_winners = winners
        mode_bits = wta_mode_bits(mode)
        out_win = torch.empty(n, k_winners, dtype=torch.int32)
        out_win_t = torch.empty(n, k_winners, dtype=torch.float32)

    def pointer(tensor: Optional[Tensor], row: int) -> Optional[int]:
        return tensor[row].data_ptr() if tensor is not None else None

    scratch_bytes = library.first_spike_conv_scratch(c_in, height, width, c_out, out_h, out_w, time_steps)

    def run(lo: int, hi: int) -> int:
        if hi <= lo:
            return 0
        scratch = thread_scratch(scratch_bytes)
        return library.first_spike_conv(
            hi - lo, c_in, height, width, times32[lo].data_ptr(), c_out, k, padding,
            weight_t.data_ptr(), threshold, time_steps, out_h, out_w,
            pointer(out_times, lo), pointer(out_pot, lo), pointer(out_best, lo),
            k_winners, radius, mode_bits, pointer(out_win, lo), pointer(out_win_t, lo),
            scratch.data_ptr(), scratch.numel(),
        )

    if any(status != 0 for status in parallel_ranges(n, run)):
        raise MemoryError("the event-driven kernel could not allocate its buffers")
    channels_first = (0, 3, 1, 2)
    out_pot = out_pot.permute(channels_first) if out_pot is not None else None
    out_times = out_times.permute(channels_first) if out_times is not None else None
    return out_times, out_pot, out_best, out_win, out_win_t


def winner_mask_of(flat: Tensor, shape: torch.Size) -> Tensor:
    """Bool mask ``shape`` ``[N, C, H, W]`` of the kernel's ``[N, k]`` flat winner indices."""
    winners = torch.zeros(shape[0], shape[1:].numel(), dtype=torch.bool)
    sample, slot = nonzero_indices(flat >= 0)
    winners[sample, flat[sample, slot].to(torch.int64)] = True
    return winners.view(shape)


def event_training_step_(
    weights: Tensor,
    in_times: Tensor,
    threshold: float,
    padding: int,
    time_steps: int,
    out_size: Tuple[int, int],
    winner_rule: Tuple[WTAMode, int, int],
    lr_plus: float,
    lr_minus: float,
    config: STDPConfig,
) -> Tensor:
    """One sequential training step of a layer, all in the C library: the kernel finds each
    image's winners (pointwise inhibition, then ``winner_rule = (mode, radius, k)``)
    without writing the layer's times, and ``stdp_groups`` applies their steps one sample
    after the other. ``weights``: contiguous float32 CPU, updated in place and returned."""
    _, _, _, flat, flat_t = run_event_kernel(
        in_times, weights, threshold, padding, time_steps, out_size, False, False, winner_rule, times=False
    )
    sample, slot = nonzero_indices(flat >= 0)
    index = flat[sample, slot].to(torch.int64)
    out_h, out_w = out_size
    channel, position = index // (out_h * out_w), index % (out_h * out_w)
    order = torch.argsort(sample * weights.shape[0] + channel, stable=True)
    winners = (sample[order], channel[order], position[order] // out_w, position[order] % out_w)
    return native_stdp_steps_(weights, in_times, winners, flat_t[sample, slot][order], config, lr_plus, lr_minus,
                              1, padding, per_sample=True)


def _typed_library():
    """The native library with this module's extra signatures set."""
    library = native_library()
    for name, (restype, argtypes) in _FIRES_SIGNATURES.items():
        getattr(library, name).restype, getattr(library, name).argtypes = restype, argtypes
    return library


def run_fires_kernel(fired: Tensor, weight: Tensor, threshold: float, padding: int,
                     out_size: Tuple[int, int], pooling: Optional[Tuple[int, int, Tuple[int, int], int]] = None
                     ) -> Tensor:
    """Bool ``[N, C_out, H_out, W_out]``: which neurons reach ``threshold`` once every input
    marked in ``fired`` (``[N, C_in, H, W]``, CPU) has spiked, by ``fires_binary`` of the C
    library: per output position the active inputs of its window are gathered and their
    weights summed in float32 registers, the sums too close to the threshold again in
    float64; work is proportional to the active inputs and nothing but the answer is
    written. Needs non-negative weights (the dispatcher checks). Split over the worker
    threads.

    ``pooling = (kernel_size, padding, (H_pool, W_pool), border)``: the answer is written
    max-pooled by non-overlapping windows and zero-padded by ``border`` instead,
    ``[N, C_out, H_pool + 2 border, W_pool + 2 border]``; the layer's own map is never
    stored."""
    if fired.device.type != "cpu":
        raise ValueError(f"fired must be on the CPU for the native kernel, got {fired.device}")
    library = _typed_library()
    n, c_in, height, width = fired.shape
    c_out, k = weight.shape[0], weight.shape[-1]
    out_h, out_w = out_size
    marks = (fired if fired.dtype in (torch.bool, torch.uint8) else fired != 0).contiguous().view(torch.uint8)
    blocks = -(-c_out // _FIRES_BLOCK)
    # [blocks][c_in * k * k][FIRES_BLOCK]: one block's weights are contiguous (and fit the L1 cache)
    weight_b = torch.zeros(blocks * _FIRES_BLOCK, c_in * k * k, dtype=torch.float32)
    weight_b[:c_out] = weight.detach().reshape(c_out, -1)
    weight_b = weight_b.view(blocks, _FIRES_BLOCK, -1).transpose(1, 2).contiguous()
    pool_k, pool_pad, (pooled_h, pooled_w), border = pooling or (0, 0, (out_h, out_w), 0)
    out = torch.empty(n, c_out, pooled_h + 2 * border, pooled_w + 2 * border, dtype=torch.bool)
    per_in, per_out = c_in * height * width, out[0].numel()
    scratch_bytes = library.fires_binary_scratch(c_in, height, width, k, out_h, out_w)

    def run(lo: int, hi: int) -> int:
        if hi > lo:
            library.fires_binary(hi - lo, c_in, height, width, marks.data_ptr() + lo * per_in, c_out, k, padding,
                                 weight_b.data_ptr(), threshold, out_h, out_w, out.data_ptr() + lo * per_out,
                                 pool_k, pool_pad, pooled_h, pooled_w, border,
                                 thread_scratch(scratch_bytes).data_ptr())
        return 0

    parallel_ranges(n, run)
    return out


def run_pooled_survivors(times: Tensor, kernel_size: int, padding: int, pooled_size: Tuple[int, int],
                         border: int) -> Tensor:
    """``pooled_survivors`` of the C library: float32 ``[N, C, H, W]`` CPU times (read
    channel-last, the event kernel's layout) min-pooled by non-overlapping windows, padded
    by ``border`` and pointwise-inhibited; float32 ``[N, C, H_pool + 2 border, W_pool + 2
    border]``. Split over the worker threads."""
    if times.device.type != "cpu":
        raise ValueError(f"times must be on the CPU for the native kernel, got {times.device}")
    library = _typed_library()
    n, c, height, width = times.shape
    out_h, out_w = pooled_size
    nhwc = times.permute(0, 2, 3, 1).contiguous()  # a no-op for channels-last times
    out = torch.empty(n, c, out_h + 2 * border, out_w + 2 * border, dtype=torch.float32)
    per_in, per_out = c * height * width, out[0].numel()

    def run(lo: int, hi: int) -> int:
        if hi > lo:
            library.pooled_survivors(hi - lo, height, width, c, nhwc.data_ptr() + 4 * lo * per_in, kernel_size,
                                     padding, out_h, out_w, border, out.data_ptr() + 4 * lo * per_out,
                                     thread_scratch(4 * c).data_ptr())
        return 0

    parallel_ranges(n, run)
    return out
