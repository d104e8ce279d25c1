"""The paper's neuron: a non-leaky integrate-and-fire neuron that fires at most once.

Kheradpisheh et al. (2018) use IF neurons without leak and without reset: per time step
``t`` with input current ``x_t`` the membrane integrates ``v += x_t`` and the neuron
fires at the first step with ``v >= threshold``; afterwards it keeps integrating but
stays silent until the window restarts. With spike *events* as inputs (each input fires
once) ``v_t`` is the convolution of the cumulative input wave, SpykeTorch's potential.

Everything here is plain PyTorch on time-major tensors ``[T, ...]``; the SpikingJelly
and snnTorch layers build on it. The integration is ``T`` sequential whole-tensor
additions, so a window run at once gives bit for bit the membrane of the same window run
step by step (``cumsum`` accumulates in another order, and on CPU in double, so it can
differ in the last bit; it also measured slower on CPU).

:func:`max_pool_spikes`, :func:`check_pool_args` and :func:`live_state` are helpers the
adapters share.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_float, check_int, check_same_device, check_tensor

__all__ = ["fire_once", "first_spike_only"]

PoolSize = Union[int, Tuple[int, int]]


def _check_sequence(name: str, value: object) -> Tensor:
    check_tensor(name, value)
    if value.dim() < 1:
        raise ValueError(f"{name} must be time-major [T, ...] with dim >= 1, got a 0-dim tensor")
    return value


def _check_state(name: str, value: Optional[Tensor], like: Tensor, boolean: bool) -> None:
    """``value`` is ``None`` or a tensor of ``like``'s per-step shape (bool when ``boolean``)."""
    if value is None:
        return
    check_tensor(name, value)
    if value.shape != like.shape[1:]:
        raise ValueError(
            f"{name} must have the shape of one time step {tuple(like.shape[1:])}, got {tuple(value.shape)}"
        )
    if boolean and value.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor, got dtype {value.dtype}")
    if not boolean and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {value.dtype}")


def _check_threshold(threshold: object, currents: Tensor) -> Union[float, Tensor]:
    if not isinstance(threshold, Tensor):
        return check_float("threshold", threshold, minimum=0.0, strict_min=True)
    if not threshold.is_floating_point():
        raise TypeError(f"threshold must be a float or a floating tensor, got dtype {threshold.dtype}")
    step = currents.shape[1:]
    try:
        fits = torch.broadcast_shapes(threshold.shape, step) == step
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"threshold must broadcast to one time step {tuple(step)}, got shape {tuple(threshold.shape)}"
        )
    return threshold


@torch.no_grad()
def fire_once(
    currents: Tensor,
    threshold: Union[float, Tensor],
    v: Optional[Tensor] = None,
    fired: Optional[Tensor] = None,
    *,
    return_v_seq: bool = False,
) -> Union[Tuple[Tensor, Tensor, Tensor], Tuple[Tensor, Tensor, Tensor, Tensor]]:
    """Run fire-once non-leaky IF neurons over a time window.

    Per step: ``v += currents[t]``, ``spike = (v >= threshold) & ~fired``,
    ``fired |= spike``; the membrane is never reset or leaked.

    Parameters
    ----------
    currents : Tensor
        Floating, time-major ``[T, ...]`` input currents.
    threshold : float or Tensor
        Firing threshold, a finite float ``> 0``; or a floating tensor that broadcasts to
        one time step ``currents.shape[1:]`` (per-neuron thresholds; its values are not
        checked, to avoid a device synchronisation).
    v : Tensor, optional
        Membrane ``[...]`` at the start (zeros when ``None``); cast to ``currents``' dtype.
    fired : Tensor, optional
        Bool ``[...]``: neurons that already fired in this window (none when ``None``).
    return_v_seq : bool
        Also return the membrane after every step.

    Returns
    -------
    spikes : Tensor
        ``[T, ...]`` 0/1 in ``currents``' dtype, at most one spike per neuron in total
        (none for neurons in ``fired``).
    v_last : Tensor
        Membrane ``[...]`` after the last step.
    fired_last : Tensor
        Bool ``[...]``, ``fired`` or-ed with every neuron that spiked.
    v_seq : Tensor
        Only when ``return_v_seq``: ``[T, ...]`` membrane after each step.

    Notes
    -----
    Not differentiable: it runs without autograd (STDP needs no gradients).

    Examples
    --------
    >>> spikes, v, fired = fire_once(torch.tensor([[0.4], [0.4], [0.4], [5.0]]), 1.0)
    >>> spikes.flatten().tolist()
    [0.0, 0.0, 1.0, 0.0]
    """
    _check_sequence("currents", currents)
    if not currents.is_floating_point():
        raise TypeError(f"currents must be a floating tensor, got dtype {currents.dtype}")
    threshold = _check_threshold(threshold, currents)
    _check_state("v", v, currents, boolean=False)
    _check_state("fired", fired, currents, boolean=True)
    check_same_device(currents=currents, v=v, fired=fired)
    step = currents.shape[1:]
    v = torch.zeros(step, dtype=currents.dtype, device=currents.device) if v is None \
        else v.to(dtype=currents.dtype, copy=True)
    fired = torch.zeros(step, dtype=torch.bool, device=currents.device) if fired is None else fired.clone()
    crossed = torch.empty_like(fired)
    spikes = torch.empty_like(currents)
    v_seq = torch.empty_like(currents) if return_v_seq else None
    for t in range(currents.shape[0]):
        v.add_(currents[t])
        if v_seq is not None:
            v_seq[t] = v
        torch.ge(v, threshold, out=crossed)
        spikes[t] = crossed > fired  # crossed and not fired before
        fired |= crossed
    if v_seq is not None:
        return spikes, v, fired, v_seq
    return spikes, v, fired


@torch.no_grad()
def first_spike_only(spikes: Tensor, fired: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Keep only each unit's first spike within a time window.

    Parameters
    ----------
    spikes : Tensor
        Time-major ``[T, ...]`` spikes (any dtype; nonzero entries are spikes).
    fired : Tensor, optional
        Bool ``[...]``: units that already spiked earlier in the window; their spikes
        are dropped (none when ``None``).

    Returns
    -------
    spikes : Tensor
        ``[T, ...]`` 0/1 in ``spikes``' dtype with at most one spike per unit.
    fired_last : Tensor
        Bool ``[...]``, ``fired`` or-ed with every unit that spiked.

    Examples
    --------
    >>> first_spike_only(torch.tensor([[0.0], [1.0], [1.0]]))[0].flatten().tolist()
    [0.0, 1.0, 0.0]
    """
    _check_sequence("spikes", spikes)
    _check_state("fired", fired, spikes, boolean=True)
    check_same_device(spikes=spikes, fired=fired)
    active = spikes != 0
    fired = torch.zeros(spikes.shape[1:], dtype=torch.bool, device=spikes.device) if fired is None \
        else fired.clone()
    out = torch.empty_like(spikes)
    for t in range(spikes.shape[0]):
        out[t] = active[t] > fired
        fired |= active[t]
    return out, fired


def live_state(state: object, shape: torch.Size) -> Optional[Tensor]:
    """``state`` if it is a tensor of ``shape`` (it continues a window), else ``None``.

    Adapters keep their per-window state as a reset value (``0.``, ``False``, ``None``)
    until the first step; a reset value or a tensor of another shape (a new batch)
    means a fresh window, which :func:`fire_once` and :func:`first_spike_only` start
    from ``None``.
    """
    return state if isinstance(state, Tensor) and state.shape == shape else None


def _pool_arg(name: str, value: object, minimum: int) -> Tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"{name} must be an int or a pair of ints, got {type(value).__name__} {value!r}")
    return tuple(check_int(f"{name}[{i}]", v, minimum=minimum) for i, v in enumerate(pair))


def check_pool_args(
    kernel_size: PoolSize, stride: Optional[PoolSize] = None, padding: PoolSize = 0
) -> Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]:
    """Validate 2-D pooling sizes; ``stride`` defaults to ``kernel_size``.

    Returns
    -------
    tuple
        ``(kernel_size, stride, padding)`` as pairs of ints.
    """
    kernel = _pool_arg("kernel_size", kernel_size, minimum=1)
    stride = kernel if stride is None else _pool_arg("stride", stride, minimum=1)
    pad = _pool_arg("padding", padding, minimum=0)
    if any(2 * p > k for p, k in zip(pad, kernel)):
        raise ValueError(f"padding must be at most half of kernel_size {kernel}, got {pad}")
    return kernel, stride, pad


def max_pool_spikes(
    spikes: Tensor, kernel_size: PoolSize, stride: Optional[PoolSize] = None, padding: PoolSize = 0
) -> Tensor:
    """Max-pool every step of spikes ``[T, N, C, H, W]`` (padding never fires).

    Max-pooling fire-once events can emit a pooled unit at several steps (one per input
    in its window); with cumulative spike waves, as in the paper, a pooled unit fires
    once, at its earliest input: follow with :func:`first_spike_only`.

    Parameters
    ----------
    spikes : Tensor
        Floating 0/1 spikes ``[T, N, C, H, W]``.
    kernel_size, stride, padding : int or pair of int
        As for ``torch.nn.functional.max_pool2d`` (``stride`` defaults to ``kernel_size``).

    Returns
    -------
    Tensor
        ``[T, N, C, H_out, W_out]`` pooled spikes.
    """
    check_tensor("spikes", spikes, 5, "[T, N, C, H, W]")
    if not spikes.is_floating_point():
        raise TypeError(f"spikes must be a floating tensor of 0/1 spikes, got dtype {spikes.dtype}")
    kernel, stride, pad = check_pool_args(kernel_size, stride, padding)
    pooled = F.max_pool2d(spikes.flatten(0, 1), kernel, stride, pad)
    return pooled.view(*spikes.shape[:2], *pooled.shape[1:])
