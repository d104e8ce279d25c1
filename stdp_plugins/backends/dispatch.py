"""Which implementation of an operation runs: one rule for every dispatched operation.

Every learning operation has a torch implementation (the reference, any device), a native
CPU one (the C library of :mod:`.native`) and, where written, a CuPy one (CUDA). With
``backend="auto"`` the fastest one that can run the given tensors is chosen: CuPy for
CUDA tensors when it implements the operation and the inputs, native for CPU tensors when
the library is available and implements the inputs, torch otherwise. An explicit
``backend=`` runs that implementation or raises an error that says why it cannot.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

import torch

from ._cupy import cupy_available
from ._native import native_available, native_status, warn_native_unavailable

__all__ = ["BACKENDS", "IMPLEMENTATIONS", "available_backends", "resolve_backend"]

BACKENDS: Tuple[str, ...] = ("auto", "torch", "native", "cupy")
"""Accepted values of every ``backend`` argument."""

IMPLEMENTATIONS: Dict[str, Tuple[str, ...]] = {
    "first_spike_times": ("torch", "native", "cupy"),
    "select_winners": ("torch", "native", "cupy"),
    "stdp_update": ("torch", "native", "cupy"),
    "first_spike_conv": ("torch", "native", "cupy"),
    "fire_once": ("torch", "native"),
    "first_spike_only": ("torch", "native"),
    "pooled_survivors": ("torch", "native"),
    "pooled_fires": ("torch", "native"),
}
"""The implementations of each dispatched operation."""

_DEVICE = {"native": "cpu", "cupy": "cuda"}


def _available(backend: str) -> Optional[str]:
    """``None`` when ``backend`` is installed and usable, else why not."""
    if backend == "native":
        return None if native_available() else f"the native CPU library is unavailable: {native_status()}"
    if backend == "cupy" and not cupy_available():
        return "CuPy is not installed; install the extra 'stdp-plugins[cuda13]' (or [cuda12])"
    return None


def available_backends(operation: str) -> Tuple[str, ...]:
    """The implementations of ``operation`` that are installed on this machine (any device)."""
    if operation not in IMPLEMENTATIONS:
        raise ValueError(f"operation must be one of {', '.join(map(repr, IMPLEMENTATIONS))}, got {operation!r}")
    return tuple(b for b in IMPLEMENTATIONS[operation] if _available(b) is None)


def resolve_backend(
    operation: str,
    backend: str,
    device: torch.device,
    unsupported: Optional[Mapping[str, Optional[str]]] = None,
) -> str:
    """The implementation of ``operation`` that runs for tensors on ``device``.

    Parameters
    ----------
    operation : str
        A key of :data:`IMPLEMENTATIONS`.
    backend : str
        One of :data:`BACKENDS`.
    device : torch.device
        Device of the operation's tensors.
    unsupported : mapping, optional
        Backend name to the reason it cannot run these particular inputs (``None`` or
        absent: it can), e.g. ``{"cupy": "reduction='sequential' is not implemented"}``.

    Returns
    -------
    str
        ``"torch"``, ``"native"`` or ``"cupy"``.

    Raises
    ------
    ValueError
        For an unknown ``backend``, a backend that does not implement ``operation``, runs on
        another device or cannot run these inputs.
    RuntimeError
        When the asked backend is not installed (no C compiler, no CuPy).
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    reasons = dict(unsupported or {})
    implemented = IMPLEMENTATIONS[operation]
    if backend == "auto":
        for candidate in ("cupy", "native"):
            if candidate in implemented and device.type == _DEVICE[candidate] and not reasons.get(candidate):
                if _available(candidate) is None:
                    return candidate
                if candidate == "native":
                    warn_native_unavailable()
        return "torch"
    if backend not in implemented:
        raise ValueError(
            f"backend={backend!r} does not implement {operation}; it has {', '.join(map(repr, implemented))}"
        )
    if backend == "torch":
        return backend
    if device.type != _DEVICE[backend]:
        raise ValueError(
            f"backend={backend!r} runs on {_DEVICE[backend]} tensors, got tensors on {device}; "
            "use backend='auto' or 'torch'"
        )
    if reasons.get(backend):
        raise ValueError(f"backend={backend!r} cannot run {operation} here: {reasons[backend]}")
    problem = _available(backend)
    if problem is not None:
        raise RuntimeError(f"backend={backend!r} is unavailable: {problem}; use backend='auto' or 'torch'")
    return backend
