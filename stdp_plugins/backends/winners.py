"""Dispatched operation: the greedy winner-take-all rule of docs/spec.md ('Winner-take-all'),
optionally after pointwise inhibition, for a whole batch."""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from ..learning._checks import check_enum, check_int, check_not_nan
from ..learning.wta import WTAMode, _checked_times_and_potentials
from ..learning.wta import select_winners as _core_select_winners
from .dispatch import resolve_backend
from ._cupy_ops import check_winner_inputs, launch_select_winners
from ._native import native_library, wta_mode_bits
from ._threads import parallel_ranges

__all__ = ["select_winners"]


def _native(spike_times: Tensor, potentials: Optional[Tensor], mode: WTAMode, radius: int,
            k_winners: Optional[int], pointwise: bool) -> Tensor:
    library = native_library()
    n, c, h, w = spike_times.shape
    times = spike_times.detach().to(torch.float32).contiguous()
    pot = None if potentials is None else potentials.detach().to(torch.float64).contiguous()
    mask = torch.zeros(spike_times.shape, dtype=torch.bool)
    mode_bits = wta_mode_bits(mode)
    per_image = c * h * w

    def run(lo: int, hi: int) -> int:
        if hi <= lo:
            return 0
        return library.select_winners(
            hi - lo, c, h, w, times.data_ptr() + 4 * lo * per_image,
            None if pot is None else pot.data_ptr() + 8 * lo * per_image, int(pointwise), mode_bits, radius,
            k_winners or 0, mask.data_ptr() + lo * per_image,
        )

    if any(status != 0 for status in parallel_ranges(n, run)):
        raise MemoryError("the native winner selection could not allocate its buffers")
    return mask


def select_winners(
    spike_times: Tensor,
    potentials: Optional[Tensor] = None,
    mode: Union[WTAMode, str] = WTAMode.GLOBAL,
    radius: int = 0,
    k_winners: Optional[int] = None,
    *,
    pointwise: bool = False,
    backend: str = "auto",
) -> Tensor:
    """Winner mask of the greedy WTA rule, through the dispatcher.

    The torch implementation is the core's :func:`stdp_plugins.learning.select_winners`.

    Parameters
    ----------
    spike_times, potentials, mode, radius, k_winners
        ``[N, C, H, W]`` first-spike times (``inf`` = silent), tie-breaking potentials
        (higher first) or ``None``, the blocking rule, its Chebyshev radius and the cap on
        winners per sample.
    pointwise : bool
        Pointwise inhibition first: at each position only the earliest neuron (ties to
        the highest potential, then the lowest channel) remains a candidate, as in
        Kheradpisheh et al. / SpykeTorch before the k-winner selection.
    backend : {"auto", "torch", "native", "cupy"}
        Implementation (see :func:`~stdp_plugins.backends.resolve_backend`). The CuPy
        one checks shapes but not values (it never synchronises).

    Returns
    -------
    Tensor
        Bool ``[N, C, H, W]`` on the device of ``spike_times``.
    """
    mode = check_enum("mode", mode, WTAMode)
    radius = check_int("radius", radius, minimum=0)
    if k_winners is not None:
        k_winners = check_int("k_winners", k_winners, minimum=1)
    if not isinstance(pointwise, bool):
        raise TypeError(f"pointwise must be a bool, got {type(pointwise).__name__}")
    check_winner_inputs(spike_times, potentials)
    chosen = resolve_backend("select_winners", backend, spike_times.device)
    if chosen == "cupy":
        return launch_select_winners(spike_times, potentials, wta_mode_bits(mode), radius, k_winners, pointwise)
    potentials_checked = _checked_times_and_potentials(spike_times, potentials)
    if potentials is not None:
        check_not_nan("potentials", potentials_checked)
    if chosen == "native":
        return _native(spike_times, potentials, mode, radius, k_winners, pointwise)
    return _core_select_winners(spike_times, potentials, mode, radius, k_winners, pointwise=pointwise)
