"""Input validation shared by the whole package.

Every check raises ``TypeError`` for a wrong kind of object and ``ValueError`` for a wrong
value, and every message names the argument, what was expected and what was passed.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Optional, Sequence, Tuple, Type, TypeVar, Union

import torch
from torch import Tensor

E = TypeVar("E", bound=Enum)


def check_tensor(
    name: str,
    value: object,
    ndim: Union[int, Sequence[int], None] = None,
    layout: str = "",
) -> Tensor:
    """Return ``value`` if it is a tensor of an allowed rank, else raise.

    Parameters
    ----------
    name : str
        Argument name used in the error message.
    value : object
        The object to check.
    ndim : int or sequence of int, optional
        Allowed ranks; ``None`` allows any rank.
    layout : str
        Human-readable expected layout, e.g. ``"[N, C, H, W]"``.
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.dim() not in allowed:
            ranks = " or ".join(f"{r}-D" for r in allowed)
            suffix = f" {layout}" if layout else ""
            raise ValueError(
                f"{name} must be a {ranks} tensor{suffix}, got shape {tuple(value.shape)}"
            )
    return value


def check_not_nan(name: str, value: Tensor) -> None:
    """Raise ``ValueError`` if a floating tensor holds NaN."""
    if value.is_floating_point() and bool(torch.isnan(value).any()):
        raise ValueError(f"{name} must not contain NaN, got a tensor with NaN entries")


def check_finite(name: str, value: Tensor) -> None:
    """Raise ``ValueError`` if a floating tensor holds NaN or +-inf."""
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must be finite, got a tensor with NaN or inf entries")


def check_spike_times(name: str, value: Tensor) -> None:
    """Spike times are floating, non-negative or ``+inf``, never NaN."""
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor of spike times, got dtype {value.dtype}")
    if value.numel() == 0:
        return
    smallest = float(value.amin())  # one pass: amin propagates NaN
    if math.isnan(smallest):
        raise ValueError(f"{name} must not contain NaN, got a tensor with NaN entries")
    if smallest < 0:
        raise ValueError(f"{name} must hold times >= 0 (or inf for never), got negative entries")


def check_binary(name: str, value: Tensor) -> None:
    """Raise ``ValueError`` unless every entry is 0 or 1 (bool tensors always pass)."""
    if value.dtype == torch.bool:
        return
    if value.is_complex():
        raise TypeError(f"{name} must be a real tensor of spikes, got dtype {value.dtype}")
    if bool(((value != 0) & (value != 1)).any()):
        raise ValueError(f"{name} must hold binary spikes (0 or 1), got other values")


def check_int(name: str, value: object, minimum: Optional[int] = None) -> int:
    """Return ``value`` as ``int`` if it is an integer ``>= minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_float(
    name: str,
    value: object,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    strict_min: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` within the bounds, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict_min else value < minimum):
        op = ">" if strict_min else ">="
        raise ValueError(f"{name} must be {op} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_learning_rate(name: str, value: object) -> Union[float, Tensor]:
    """A learning rate is a non-negative finite float or a 0-dim tensor."""
    if isinstance(value, Tensor):
        if value.dim() != 0:
            raise ValueError(f"{name} must be a float or a 0-dim tensor, got shape {tuple(value.shape)}")
        return value
    return check_float(name, value, minimum=0.0)


def check_enum(name: str, value: object, enum_type: Type[E]) -> E:
    """Return ``value`` as a member of ``enum_type``; strings match names case-insensitively."""
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        for member in enum_type:
            if value.lower() in (member.name.lower(), str(member.value).lower()):
                return member
    known = ", ".join(m.name for m in enum_type)
    raise ValueError(f"{name} must be one of {known}, got {value!r}")


def check_shape_tuple(name: str, value: object) -> Tuple[int, ...]:
    """Return a spatial shape as a tuple of positive ints (an int means a 1-tuple)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list, torch.Size)):
        raise TypeError(f"{name} must be a tuple of ints, got {type(value).__name__} {value!r}")
    return tuple(check_int(f"{name}[{i}]", v, minimum=1) for i, v in enumerate(value))


def check_same_device(**tensors: Optional[Tensor]) -> None:
    """Raise ``ValueError`` if the given tensors do not share one device."""
    present = {k: v for k, v in tensors.items() if v is not None}
    devices = {v.device for v in present.values()}
    if len(devices) > 1:
        listing = ", ".join(f"{k} on {v.device}" for k, v in present.items())
        raise ValueError(f"tensors must be on the same device, got {listing}")
