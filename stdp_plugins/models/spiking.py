"""First-spike convolutional layers of non-leaky integrate-and-fire neurons (functional).

Each neuron integrates ``conv(input_t)`` of cumulative input spike waves and fires once, at
the first step ``t`` with potential ``>= threshold``. Because inputs are cumulative and
weights non-negative, potentials only grow, so a layer is fully described by first-spike
times: ``[N, C, H, W]`` float tensors, ``inf`` = never fired.

Two exact implementations give the same times and potentials:

- :func:`dense_first_spike_conv`: the straightforward computation, a convolution of the
  cumulative input at every time step (float64, batched over time and images). Used on
  CUDA and as the reference.
- the event-driven C kernel of :mod:`._native` (CPU): walks the input spikes in time order
  and touches only the outputs that see them, work proportional to the number of spikes.

:func:`first_spike_conv` picks one (``method="auto"``). Potentials are sums of float32
weights in float64, which are exact, so both paths agree bit for bit.

For learning, :func:`first_spike_conv_winners` lets the kernel also pick each image's
winners (pointwise inhibition, then k winners), and :func:`kernel_threads` gives it the
cores during a training loop. For inference, :func:`fires_given_inputs` needs only which
neurons fire at all (one time step of the kernel, or a checked float32 convolution).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..learning import STDPConfig, STDPVariant, WTAMode, select_winners, select_winners_among
from ..learning._checks import check_enum, check_float, check_int, check_spike_times, check_tensor
from ..learning._indexing import nonzero_indices
from ..learning.stdp import check_batch_shapes
from ..learning.timing import conv_output_size
from ._native import NEVER, native_library

__all__ = [
    "first_spike_conv",
    "first_spike_conv_pointwise",
    "first_spike_conv_winners",
    "survivor_winners",
    "dense_first_spike_conv",
    "event_first_spike_conv",
    "fires_at_all",
    "fires_given_inputs",
    "kernel_threads",
    "native_sequential_update_",
    "event_sequential_step_",
    "min_pool_times",
    "max_pool_binary",
    "pad_times",
    "times_to_codes",
    "codes_to_times",
    "native_available",
]

_METHODS = ("auto", "event", "dense")


def native_available() -> bool:
    """Whether the event-driven C kernel could be built and loaded on this machine."""
    return native_library() is not None


def times_to_codes(times: Tensor, time_steps: int) -> Tensor:
    """Spike times (float, ``inf`` = never) to uint8 codes (``255`` = never, or ``>= time_steps``)."""
    if time_steps >= NEVER:
        raise ValueError(f"time_steps must be < {NEVER} for uint8 spike codes, got {time_steps}")
    finite = times < time_steps
    return torch.where(finite, times, torch.zeros_like(times)).to(torch.uint8).masked_fill_(~finite, NEVER)


def codes_to_times(codes: Tensor) -> Tensor:
    """uint8 spike codes back to float32 times (``255`` becomes ``inf``)."""
    times = codes.to(torch.float32)
    return times.masked_fill_(codes == NEVER, math.inf)


def _check_layer(in_times: Tensor, weight: Tensor, threshold: float, padding: int, time_steps: int):
    check_tensor("in_times", in_times, 4, "[N, C_in, H, W]")
    check_spike_times("in_times", in_times)
    check_tensor("weight", weight, 4, "[C_out, C_in, k, k]")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a floating tensor, got dtype {weight.dtype}")
    if weight.shape[1] != in_times.shape[1] or weight.shape[2] != weight.shape[3]:
        raise ValueError(
            f"weight must have shape [C_out, C_in={in_times.shape[1]}, k, k], got {tuple(weight.shape)}"
        )
    if bool((weight < 0).any()):
        raise ValueError("weight must be non-negative (first-spike layers need monotone potentials)")
    if weight.device != in_times.device:
        raise ValueError(f"weight on {weight.device} and in_times on {in_times.device} must share a device")
    threshold = check_float("threshold", threshold, minimum=0.0, strict_min=True)
    padding = check_int("padding", padding, minimum=0)
    time_steps = check_int("time_steps", time_steps, minimum=1)
    k = weight.shape[-1]
    out_h = conv_output_size(in_times.shape[2], k, 1, padding)
    out_w = conv_output_size(in_times.shape[3], k, 1, padding)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"in_times spatial size {tuple(in_times.shape[2:])} is too small for a {k}x{k} kernel "
            f"with padding {padding}"
        )
    return threshold, padding, time_steps, (out_h, out_w)


def dense_first_spike_conv(
    in_times: Tensor,
    weight: Tensor,
    threshold: float,
    padding: int = 0,
    time_steps: int = 15,
    chunk: int = 64,
) -> Tuple[Tensor, Tensor]:
    """First-spike times by a float64 convolution of the cumulative input at every step.

    Parameters
    ----------
    in_times : Tensor
        ``[N, C_in, H, W]`` input first-spike times (``inf`` = never).
    weight : Tensor
        ``[C_out, C_in, k, k]`` non-negative weights (stride 1).
    threshold : float
        Firing threshold (``potential >= threshold`` fires).
    padding : int
        Zero padding of the convolution.
    time_steps : int
        Number of steps ``T``; inputs at ``t >= T`` never arrive.
    chunk : int
        Images per convolution call (memory bound).

    Returns
    -------
    times : Tensor
        Float32 ``[N, C_out, H_out, W_out]`` first-spike steps, ``inf`` for silent neurons.
    potentials : Tensor
        Float64, the potential at the first spike (0 for silent neurons).
    """
    threshold, padding, time_steps, (out_h, out_w) = _check_layer(in_times, weight, threshold, padding, time_steps)
    w64 = weight.to(torch.float64)
    steps = torch.arange(time_steps, device=in_times.device, dtype=in_times.dtype).view(-1, 1, 1, 1, 1)
    times_out, pots_out = [], []
    for part in in_times.split(max(1, chunk)):
        waves = (part[None] <= steps).to(torch.float64)  # [T, n, C, H, W]
        pot = F.conv2d(waves.flatten(0, 1), w64, padding=padding)
        pot = pot.view(time_steps, part.shape[0], weight.shape[0], out_h, out_w)
        fired = pot >= threshold
        first = fired.to(torch.uint8).argmax(dim=0, keepdim=True)
        ever = fired.any(dim=0)
        times_out.append(torch.where(ever, first[0].to(torch.float32), math.inf))
        pots_out.append(torch.where(ever, pot.gather(0, first)[0], 0.0))
    return torch.cat(times_out), torch.cat(pots_out)


def event_first_spike_conv(
    in_times: Tensor,
    weight: Tensor,
    threshold: float,
    padding: int = 0,
    time_steps: int = 15,
    potentials: bool = True,
    pointwise: bool = False,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Tuple[Tensor, ...]:
    """Event-driven version of :func:`dense_first_spike_conv` (CPU, the C kernel).

    Same arguments and results (``potentials=False`` skips them and returns ``None``);
    with ``pointwise=True`` a third result, the pointwise-inhibition survivor of every
    position (see :func:`first_spike_conv_pointwise`). ``memory_format`` of the times
    and potentials: ``torch.channels_last`` is the kernel's own layout (no copy). Raises
    ``RuntimeError`` when the kernel is unavailable and ``ValueError`` for tensors not on
    the CPU.
    """
    times, pots, survivor, _, _ = _run_event_kernel(
        in_times, weight, threshold, padding, time_steps, potentials, pointwise, None
    )
    times = times.contiguous(memory_format=memory_format)
    pots = pots.contiguous(memory_format=memory_format) if pots is not None else None
    if pointwise:
        return times, pots, survivor.to(torch.int64)
    return times, pots


_pool_lock = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0


def _worker_pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool of at least ``workers`` threads, kept between calls (starting threads
    for every batch would cost more than a small batch's work). The C kernel runs without
    the GIL, so the threads run in parallel."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(workers, thread_name_prefix="stdp-plugins"), workers
        return _pool


_kernel_workers: ContextVar[Optional[int]] = ContextVar("stdp_plugins_kernel_workers", default=None)


@contextmanager
def kernel_threads() -> Iterator[int]:
    """Give torch's threads to the event-driven kernel for a loop of small steps.

    Inside the block torch runs its own operations in the calling thread
    (``torch.set_num_threads(1)``) and the C kernel splits each batch over the threads
    torch had, which the block yields. Small batches otherwise gain nothing from a second
    core: after every small torch operation its OpenMP threads keep spinning for a while
    and occupy the core the kernel's second worker needs.
    """
    threads = torch.get_num_threads()
    token = _kernel_workers.set(threads)
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)
        _kernel_workers.reset(token)


_thread_state = threading.local()


def _thread_scratch(nbytes: int) -> Tensor:
    """This thread's working memory for the C kernel, at least ``nbytes``, kept between
    calls so that small batches do not pay for fresh pages."""
    buffer = getattr(_thread_state, "scratch", None)
    if buffer is None or buffer.numel() < nbytes:
        buffer = torch.empty(nbytes, dtype=torch.uint8)
        _thread_state.scratch = buffer
    return buffer


def _run_event_kernel(
    in_times: Tensor,
    weight: Tensor,
    threshold: float,
    padding: int,
    time_steps: int,
    potentials: bool,
    pointwise: bool,
    winners: Optional[Tuple[WTAMode, int, int]],
    times: bool = True,
) -> Tuple[Optional[Tensor], ...]:
    """Run the C kernel over the batch, split across torch's threads.

    Returns times (``None`` when ``times=False``) and potentials (or ``None``) as
    ``[N, C, H, W]`` views of the kernel's channel-last arrays, int32 survivors (or
    ``None``) and, when ``winners = (mode, radius, k)`` is given, the int32 ``[N, k]`` flat
    indices of the learning winners (``-1`` padded) and their float32 spike times.
    """
    threshold, padding, time_steps, (out_h, out_w) = _check_layer(in_times, weight, threshold, padding, time_steps)
    if in_times.device.type != "cpu":
        raise ValueError(f"in_times must be on the CPU for the event-driven kernel, got {in_times.device}")
    library = native_library()
    if library is None:
        raise RuntimeError("the event-driven kernel is unavailable (no C compiler); use method='dense'")
    n, c_in, height, width = in_times.shape
    c_out, k = weight.shape[0], weight.shape[-1]
    codes = times_to_codes(in_times, time_steps).contiguous()
    weight_t = weight.detach().to(torch.float64).permute(1, 2, 3, 0).contiguous()
    out_times = torch.empty(n, out_h, out_w, c_out, dtype=torch.float32) if times else None
    out_pot = torch.empty(n, out_h, out_w, c_out, dtype=torch.float64) if potentials else None
    out_best = torch.empty(n, out_h, out_w, dtype=torch.int32) if pointwise or winners else None
    mode_bits, radius, k_winners = 0, 0, 0
    out_win = out_win_t = None
    if winners is not None:
        mode, radius, k_winners = winners
        mode_bits = (mode in (WTAMode.GLOBAL, WTAMode.BOTH)) + 2 * (mode in (WTAMode.LOCAL, WTAMode.BOTH))
        out_win = torch.empty(n, k_winners, dtype=torch.int32)
        out_win_t = torch.empty(n, k_winners, dtype=torch.float32)

    def pointer(tensor: Optional[Tensor], row: int) -> Optional[int]:
        return tensor[row].data_ptr() if tensor is not None else None

    scratch_bytes = library.first_spike_conv_scratch(c_in, height, width, c_out, out_h, out_w, time_steps)

    def run(lo: int, hi: int) -> int:
        if hi <= lo:
            return 0
        scratch = _thread_scratch(scratch_bytes)
        return library.first_spike_conv(
            hi - lo, c_in, height, width, codes[lo].data_ptr(), c_out, k, padding,
            weight_t.data_ptr(), threshold, time_steps, out_h, out_w,
            pointer(out_times, lo), pointer(out_pot, lo), pointer(out_best, lo),
            k_winners, radius, mode_bits, pointer(out_win, lo), pointer(out_win_t, lo),
            scratch.data_ptr(), scratch.numel(),
        )

    workers = max(1, min(_kernel_workers.get() or torch.get_num_threads(), n))
    bounds = [round(i * n / workers) for i in range(workers + 1)]
    if workers == 1:
        status = [run(0, n)]
    else:
        status = list(_worker_pool(workers).map(run, bounds[:-1], bounds[1:]))
    if any(s != 0 for s in status):
        raise MemoryError("the event-driven kernel could not allocate its buffers")
    channels_first = (0, 3, 1, 2)
    out_pot = out_pot.permute(channels_first) if out_pot is not None else None
    out_times = out_times.permute(channels_first) if out_times is not None else None
    return out_times, out_pot, out_best, out_win, out_win_t


def _resolve_method(method: str, in_times: Tensor) -> str:
    """``"event"`` or ``"dense"`` for a ``method`` argument (``"auto"``: event-driven on the
    CPU when the kernel is available)."""
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(_METHODS)}, got {method!r}")
    if method == "auto":
        return "event" if in_times.device.type == "cpu" and native_available() else "dense"
    return method


def first_spike_conv(
    in_times: Tensor,
    weight: Tensor,
    threshold: float,
    padding: int = 0,
    time_steps: int = 15,
    method: str = "auto",
    potentials: bool = True,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Tuple[Tensor, Optional[Tensor]]:
    """First-spike times and potentials of a layer of at-most-once IF neurons.

    Parameters
    ----------
    in_times, weight, threshold, padding, time_steps
        See :func:`dense_first_spike_conv`.
    method : {"auto", "event", "dense"}
        ``"event"``: the event-driven CPU kernel; ``"dense"``: a convolution per time
        step; ``"auto"``: event-driven on the CPU when the kernel is available, else dense.
    potentials : bool
        ``False`` returns ``None`` instead of the potentials (the kernel then skips them).
    memory_format : torch.memory_format
        Layout of the results; ``torch.channels_last`` is the event-driven kernel's own.

    Returns
    -------
    times : Tensor
        Float32 ``[N, C_out, H_out, W_out]``, ``inf`` = silent.
    potentials : Tensor or None
        Float64 potential at the first spike, 0 for silent neurons.
    """
    if _resolve_method(method, in_times) == "event":
        return event_first_spike_conv(in_times, weight, threshold, padding, time_steps, potentials,
                                      memory_format=memory_format)
    times, pots = dense_first_spike_conv(in_times, weight, threshold, padding, time_steps)
    times = times.contiguous(memory_format=memory_format)
    return times, pots.contiguous(memory_format=memory_format) if potentials else None


def first_spike_conv_pointwise(
    in_times: Tensor,
    weight: Tensor,
    threshold: float,
    padding: int = 0,
    time_steps: int = 15,
    method: str = "auto",
) -> Tuple[Tensor, Tensor, Tensor]:
    """:func:`first_spike_conv` plus the survivor of pointwise inhibition at each position.

    The survivor is the channel of
    ``select_winners(times, potentials, WTAMode.LOCAL, 0)`` at that position: the earliest
    spike, ties to the highest potential, then the lowest channel. The event-driven
    kernel finds it while it writes the times, so callers get the learning candidates
    without another pass over the layer.

    Returns
    -------
    times, potentials : Tensor
        As :func:`first_spike_conv`.
    survivor : Tensor
        int64 ``[N, H_out, W_out]``, the surviving channel, ``-1`` where nothing fired.
    """
    if _resolve_method(method, in_times) == "event":
        return event_first_spike_conv(in_times, weight, threshold, padding, time_steps, pointwise=True)
    times, potentials = dense_first_spike_conv(in_times, weight, threshold, padding, time_steps)
    survivors = select_winners(times, potentials, WTAMode.LOCAL, 0)
    survivor = torch.where(survivors.any(dim=1), survivors.to(torch.uint8).argmax(dim=1), -1)
    return times, potentials, survivor


def survivor_winners(
    times: Tensor, potentials: Tensor, survivor: Tensor, mode: WTAMode, radius: int, k_winners: int
) -> Tensor:
    """Winners among the pointwise-inhibition survivors: :func:`~stdp_plugins.learning.select_winners_among`
    with the survivors of :func:`first_spike_conv_pointwise` (``survivor``, ``-1`` = none)
    as candidates; returns a bool mask shaped like ``times``."""
    check_tensor("survivor", survivor, 3, "[N, H_out, W_out]")
    sample, y, x = nonzero_indices(survivor >= 0)
    candidates = (sample, survivor[sample, y, x], y, x)
    return select_winners_among(times, potentials, candidates, mode, radius, k_winners)


def _checked_winner_rule(mode: WTAMode, radius: int, k_winners: int) -> Tuple[WTAMode, int, int]:
    """Validated ``(mode, radius, k_winners)`` of a learning-winner rule."""
    return (check_enum("mode", mode, WTAMode), check_int("radius", radius, minimum=0),
            check_int("k_winners", k_winners, minimum=1))


def first_spike_conv_winners(
    in_times: Tensor,
    weight: Tensor,
    threshold: float,
    padding: int,
    time_steps: int,
    mode: WTAMode,
    radius: int,
    k_winners: int,
    method: str = "auto",
) -> Tuple[Tensor, Tensor]:
    """First-spike times and the learning winners of a layer.

    The winners are pointwise inhibition (:func:`first_spike_conv_pointwise`) followed by
    :func:`~stdp_plugins.learning.select_winners_among` with ``mode``, ``radius`` and
    ``k_winners`` on the survivors. The event-driven kernel walks the survivors of each
    image itself as it finishes it (same order and blocking rule), so no potentials
    leave the kernel.

    Returns
    -------
    times : Tensor
        Float32 ``[N, C_out, H_out, W_out]``, ``inf`` = silent.
    winners : Tensor
        Bool mask shaped like ``times``.

    Notes
    -----
    On the event-driven path ``times`` is a channels-last view (the kernel's layout).
    """
    mode, radius, k_winners = _checked_winner_rule(mode, radius, k_winners)
    if _resolve_method(method, in_times) == "dense":
        times, potentials, survivor = first_spike_conv_pointwise(
            in_times, weight, threshold, padding, time_steps, "dense"
        )
        return times, survivor_winners(times, potentials, survivor, mode, radius, k_winners)
    times, _, _, flat, _ = _run_event_kernel(
        in_times, weight, threshold, padding, time_steps, False, False, (mode, radius, k_winners)
    )
    winners = torch.zeros(times.shape[0], times[0].numel(), dtype=torch.bool)
    sample, slot = nonzero_indices(flat >= 0)
    winners[sample, flat[sample, slot].to(torch.int64)] = True
    return times, winners.view(times.shape)


def native_sequential_update_(
    weights: Tensor,
    pre_spike_times: Tensor,
    post_spike_times: Tensor,
    winner_mask: Tensor,
    lr_plus: float,
    lr_minus: float,
    config: STDPConfig,
    padding: int,
    time_steps: int,
) -> Tensor:
    """:func:`~stdp_plugins.learning.sequential_stdp_update_` in the C library, bit for bit.

    For float32 CPU weights and the integer spike times of these layers (steps below
    ``time_steps``, else never); the per-step work of a batch, which in torch is a few
    small operations per rank, becomes one pass over the winners. Stride 1.

    Returns
    -------
    Tensor
        ``weights``, updated in place.
    """
    check_batch_shapes(weights, pre_spike_times, post_spike_times, winner_mask, 1, padding)
    check_spike_times("post_spike_times", post_spike_times)
    sample, channel, y, x = nonzero_indices(winner_mask)
    fired = torch.isfinite(post_spike_times[sample, channel, y, x])
    winners = (sample[fired], channel[fired], y[fired], x[fired])
    t_post = post_spike_times[winners]
    return _native_sequential_steps_(weights, pre_spike_times, winners, t_post, lr_plus, lr_minus, config,
                                     padding, time_steps)


def _native_sequential_steps_(
    weights: Tensor,
    pre_spike_times: Tensor,
    winners: Tuple[Tensor, Tensor, Tensor, Tensor],
    t_post: Tensor,
    lr_plus: float,
    lr_minus: float,
    config: STDPConfig,
    padding: int,
    time_steps: int,
) -> Tensor:
    """The C library's sequential STDP step for winners ``(sample, channel, y, x)`` sorted
    by sample and then channel, with spike times ``t_post``."""
    library = native_library()
    if library is None:
        raise RuntimeError("the C library is unavailable (no C compiler); use fused_winner_update")
    if weights.dtype != torch.float32 or weights.device.type != "cpu" or not weights.is_contiguous():
        raise ValueError(f"weights must be contiguous float32 on the CPU, got {weights.dtype} on {weights.device}")
    sample, channel, y, x = (index.to(torch.int64).contiguous() for index in winners)
    t_post = t_post.to(torch.float32).contiguous()
    codes = times_to_codes(pre_spike_times, time_steps).contiguous()
    _, c_in, height, width = pre_spike_times.shape
    k = weights.shape[-1]
    count = torch.empty(c_in * k * k, dtype=torch.int32)
    with torch.no_grad():
        library.sequential_stdp(
            sample.numel(), sample.data_ptr(), channel.data_ptr(), y.data_ptr(), x.data_ptr(),
            t_post.data_ptr(), codes.data_ptr(), c_in, height, width, time_steps, k, 1, padding,
            weights.data_ptr(), lr_plus + lr_minus, lr_minus, int(config.variant is STDPVariant.ADDITIVE),
            config.weight_min, config.weight_max, count.data_ptr(),
        )
    return weights


def event_sequential_step_(
    weights: Tensor,
    in_times: Tensor,
    threshold: float,
    padding: int,
    time_steps: int,
    mode: WTAMode,
    radius: int,
    k_winners: int,
    lr_plus: float,
    lr_minus: float,
    config: STDPConfig,
) -> Tensor:
    """One training step of a layer, all in the C library: the kernel finds each image's
    winners (as :func:`first_spike_conv_winners`) without writing the layer's times, and
    :func:`native_sequential_update_` applies their steps. Same weights, bit for bit, as
    ``first_spike_conv_winners`` followed by ``sequential_stdp_update_``.

    Returns
    -------
    Tensor
        ``weights``, updated in place.
    """
    mode, radius, k_winners = _checked_winner_rule(mode, radius, k_winners)
    _, _, _, flat, flat_t = _run_event_kernel(
        in_times, weights, threshold, padding, time_steps, False, False, (mode, radius, k_winners), times=False
    )
    sample, slot = nonzero_indices(flat >= 0)
    index = flat[sample, slot].to(torch.int64)
    out_h = conv_output_size(in_times.shape[2], weights.shape[-1], 1, padding)
    out_w = conv_output_size(in_times.shape[3], weights.shape[-1], 1, padding)
    channel, position = index // (out_h * out_w), index % (out_h * out_w)
    order = torch.argsort(sample * weights.shape[0] + channel, stable=True)
    winners = (sample[order], channel[order], position[order] // out_w, position[order] % out_w)
    return _native_sequential_steps_(weights, in_times, winners, flat_t[sample, slot][order], lr_plus, lr_minus,
                                     config, padding, time_steps)


def fires_at_all(
    in_times: Tensor, weight: Tensor, threshold: float, padding: int = 0, time_steps: int = 15, chunk: int = 256
) -> Tensor:
    """Bool ``[N, C_out, H_out, W_out]``: whether each neuron fires within ``time_steps``.

    This is the last step of the cumulative output wave (its maximum over time), which
    only depends on the set of inputs that fired, not on when (:func:`fires_given_inputs`).
    Equals the last step of :func:`dense_first_spike_conv`.
    """
    threshold, padding, time_steps, _ = _check_layer(in_times, weight, threshold, padding, time_steps)
    return fires_given_inputs(in_times < time_steps, weight, threshold, padding, chunk)


def fires_given_inputs(
    fired: Tensor, weight: Tensor, threshold: float, padding: int = 0, chunk: int = 256
) -> Tensor:
    """Bool ``[N, C_out, H_out, W_out]``: which neurons reach ``threshold`` once every input
    marked in ``fired`` (bool or 0/1 ``[N, C_in, H, W]``) has spiked.

    The decision is the one of exact float64 sums of the float32 weights. On the CPU the
    event-driven kernel computes them (one time step, every marked input at once; work
    proportional to the active inputs, which trained layers make sparse). Elsewhere, with
    non-negative weights, a float32 convolution decides first: a float32 sum of ``m``
    non-negative terms is within ``(m - 1) u / (1 - (m - 1) u)`` of its value relative
    (``u = 2**-24``), so only neurons whose float32 potential lies that close to the
    threshold are summed again in float64 (one exact dot product each); negative
    weights use float64 throughout.
    """
    check_tensor("fired", fired, 4, "[N, C_in, H, W]")
    check_tensor("weight", weight, 4, "[C_out, C_in, k, k]")
    if weight.shape[1] != fired.shape[1]:
        raise ValueError(
            f"weight must have C_in={fired.shape[1]} input channels to match fired "
            f"{tuple(fired.shape)}, got shape {tuple(weight.shape)}"
        )
    padding = check_int("padding", padding, minimum=0)
    weight = weight.detach()
    negative = bool((weight < 0).any())
    if not negative and threshold > 0 and fired.device.type == "cpu" and native_available():
        return torch.cat([
            _run_event_kernel(torch.where(part.bool(), 0.0, math.inf), weight, threshold, padding, 1,
                              False, False, None)[0].isfinite()
            for part in fired.split(max(1, chunk))
        ])
    if negative:
        w64 = weight.to(torch.float64)
        return torch.cat([
            F.conv2d(part.to(torch.float64), w64, padding=padding) >= threshold
            for part in fired.split(max(1, chunk))
        ])
    return torch.cat([
        _fires_float32_checked(part, weight, threshold, padding) for part in fired.split(max(1, chunk))
    ])


_UNIT_ROUNDOFF_32 = 2.0 ** -24


def _fires_float32_checked(fired: Tensor, weight: Tensor, threshold: float, padding: int) -> Tensor:
    """:func:`fires_given_inputs` of one chunk: float32 convolution, float64 where unsure.

    A float32 sum of ``m`` non-negative terms is within ``g / (1 - g)`` of its exact value
    relative, ``g = (m - 1) u``; ``m`` is the number of active inputs in the neuron's
    window (a single term is exact). Potentials farther than twice that, plus twice the
    rounding of ``threshold`` to float32, from the threshold are decided; the rest are
    summed again exactly.
    """
    x = fired.to(torch.float32)
    potential = F.conv2d(x, weight.to(torch.float32), padding=padding)
    c_in, k = weight.shape[1], weight.shape[-1]
    window = torch.ones(1, 1, k, k, dtype=torch.float32, device=x.device)
    terms = F.conv2d(x.sum(dim=1, keepdim=True), window, padding=padding)  # [N, 1, H_out, W_out]
    g = (terms - 1).clamp_(min=0) * _UNIT_ROUNDOFF_32
    threshold_rounding = abs(threshold - float(torch.tensor(threshold, dtype=torch.float32)))
    margin = 2 * g / (1 - g) * abs(threshold) * (1 + 2 * g) + 2 * threshold_rounding
    out = potential >= threshold
    unsure = nonzero_indices((potential - threshold).abs_() <= margin)
    if unsure[0].numel():
        sample, channel, y, xx = unsure
        padded = F.pad(x, (padding,) * 4)
        offsets = torch.arange(k, device=x.device)
        rows = (y[:, None] + offsets)[:, None, :, None]
        cols = (xx[:, None] + offsets)[:, None, None, :]
        inputs = torch.arange(c_in, device=x.device)[None, :, None, None]
        patches = padded[sample[:, None, None, None], inputs, rows, cols].to(torch.float64)
        exact = (patches * weight[channel].to(torch.float64)).flatten(1).sum(dim=1)
        out[sample, channel, y, xx] = exact >= threshold
    return out


def min_pool_times(times: Tensor, kernel_size: int, stride: int, padding: int = 0) -> Tensor:
    """Max-pooling of cumulative spike waves expressed on first-spike times (a min-pool).

    Padding counts as "never fired".
    """
    check_tensor("times", times, 4, "[N, C, H, W]")
    return -F.max_pool2d(-times, kernel_size, stride, padding)


def max_pool_binary(fired: Tensor, kernel_size: int, stride: int, padding: int = 0) -> Tensor:
    """Max-pooling of a binary spike map (bool or 0/1 ``[N, C, H, W]``) as a bool map.

    Equals ``F.max_pool2d(fired.float(), kernel_size, stride, padding) > 0`` (padding never
    fires). Non-overlapping windows (``kernel_size == stride``) are reduced with a reshape
    on bytes instead of a float pooling.
    """
    check_tensor("fired", fired, 4, "[N, C, H, W]")
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    padding = check_int("padding", padding, minimum=0)
    if kernel_size != stride:
        return F.max_pool2d(fired.to(torch.float32), kernel_size, stride, padding) > 0
    n, c, height, width = fired.shape
    out_h = conv_output_size(height, kernel_size, stride, padding)
    out_w = conv_output_size(width, kernel_size, stride, padding)
    if min(out_h, out_w) < 1:
        raise ValueError(
            f"fired of spatial size {height}x{width} is smaller than a {kernel_size}x{kernel_size} "
            f"pooling window with padding {padding}"
        )
    # windows start at -padding; pad (or crop) the far side to exactly out * kernel_size
    framed = F.pad(fired.to(torch.uint8), (padding, out_w * kernel_size - width - padding,
                                           padding, out_h * kernel_size - height - padding))
    rows = framed[:, :, 0::kernel_size]
    for offset in range(1, kernel_size):
        rows = rows | framed[:, :, offset::kernel_size]
    pooled = rows[..., 0::kernel_size]
    for offset in range(1, kernel_size):
        pooled = pooled | rows[..., offset::kernel_size]
    return pooled.bool()


def pad_times(times: Tensor, padding: int) -> Tensor:
    """Zero-pad spike waves spatially: the border never fires (``inf`` times)."""
    check_tensor("times", times, 4, "[N, C, H, W]")
    padding = check_int("padding", padding, minimum=0)
    return F.pad(times, (padding,) * 4, value=math.inf)
