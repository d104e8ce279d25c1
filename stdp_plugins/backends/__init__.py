"""One engine for every model: each learning operation behind one dispatcher.

The SpikingJelly and snnTorch learners and the reference network call only these:

- :func:`first_spike_times`: first-spike times of a recorded ``[T, ...]`` window, with
  the membrane at each neuron's first spike;
- :func:`select_winners`: the greedy winner-take-all rule (every WTA mode, radius,
  ``k_winners``, optional pointwise inhibition first);
- :func:`fused_winner_update`: the batch STDP update, ``reduction="mean"`` or
  ``"sequential"``, in place;
- :func:`fire_once` / :func:`first_spike_only`: the paper's neuron over a window and
  first-spike pooling (the SpikingJelly and snnTorch layers run these);
- :func:`first_spike_conv` and its relatives: a whole layer of fire-once IF neurons on
  first-spike times (the reference network's layers).

Each has a torch implementation (the reference, any device), a native CPU one (C sources
in ``csrc/``, compiled once and cached) and a CuPy one (``cuda/``) where written; the
``backend`` argument picks one (``"auto"``: the fastest that can run the inputs, see
:func:`resolve_backend`). Every implementation follows the semantics of the docs' spec page
and is tested against the torch reference.
"""

from ._cupy import cupy_available, kernel_source
from ._native import codes_to_times, native_available, native_status, times_to_codes
from ._threads import kernel_threads
from .conv import (
    dense_first_spike_conv,
    first_spike_conv,
    first_spike_conv_pointwise,
    first_spike_conv_winners,
    first_spike_training_step_,
)
from .dispatch import BACKENDS, IMPLEMENTATIONS, available_backends, resolve_backend
from .fires import fires_at_all, fires_given_inputs, pooled_fires
from .neuron import fire_once, first_spike_only
from .stdp import REDUCTIONS, fused_winner_update
from .timing import first_spike_times
from .winners import select_winners

__all__ = [
    "BACKENDS",
    "IMPLEMENTATIONS",
    "REDUCTIONS",
    "available_backends",
    "codes_to_times",
    "cupy_available",
    "dense_first_spike_conv",
    "fire_once",
    "fires_at_all",
    "fires_given_inputs",
    "first_spike_conv",
    "first_spike_conv_pointwise",
    "first_spike_conv_winners",
    "first_spike_only",
    "first_spike_times",
    "first_spike_training_step_",
    "fused_winner_update",
    "kernel_source",
    "kernel_threads",
    "native_available",
    "native_status",
    "pooled_fires",
    "resolve_backend",
    "select_winners",
    "times_to_codes",
]
