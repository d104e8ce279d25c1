"""Input validation shared by the whole package.

Every check raises ``TypeError`` for a wrong kind of object and ``ValueError`` for a wrong
value, and every message names the argument, what was expected and what was passed. The
name is always the caller's: a public function passes its own parameter's name down, so a
helper never reports a name the user did not write.

Checks that read tensor values are built from *probes* (a 0-dim flag per check), and
:func:`check_values` runs any number of them with one device-to-host transfer, so adding a
check to a call that already reads one value costs no further synchronisation.
"""

from __future__ import annotations

import math
import numbers
from enum import Enum
from typing import List, Optional, Sequence, Tuple, Type, TypeVar, Union

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


#: One value check of :func:`check_values`: a 0-dim bool tensor that is true when the
#: check fails, the exception type and its message.
Probe = Tuple[Tensor, Type[Exception], str]


def nan_probe(name: str, value: Tensor) -> List[Probe]:
    """Probe: a floating tensor holds no NaN."""
    if not value.is_floating_point():
        return []
    return [(torch.isnan(value).any(), ValueError, f"{name} must not contain NaN, got a tensor with NaN entries")]


def finite_probe(name: str, value: Tensor) -> List[Probe]:
    """Probe: a floating tensor holds neither NaN nor +-inf."""
    if not value.is_floating_point():
        return []
    return [(~torch.isfinite(value).all(), ValueError, f"{name} must be finite, got a tensor with NaN or inf entries")]


def spike_time_probe(name: str, value: Tensor) -> List[Probe]:
    """Probes: spike times are floating (checked at once), never NaN and ``>= 0`` or ``+inf``."""
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor of spike times, got dtype {value.dtype}")
    if value.numel() == 0:
        return []
    smallest = value.amin()  # one pass: amin propagates NaN
    return [
        (torch.isnan(smallest), ValueError, f"{name} must not contain NaN, got a tensor with NaN entries"),
        (smallest < 0, ValueError, f"{name} must hold times >= 0 (or inf for never), got negative entries"),
    ]


def binary_probe(name: str, value: Tensor) -> List[Probe]:
    """Probe: every entry is 0 or 1 (bool tensors pass without one; complex fails at once)."""
    if value.dtype == torch.bool:
        return []
    if value.is_complex():
        raise TypeError(f"{name} must be a real tensor of spikes, got dtype {value.dtype}")
    return [(((value != 0) & (value != 1)).any(), ValueError, f"{name} must hold binary spikes (0 or 1), got other values")]


def check_values(*probes: Sequence[Probe]) -> None:
    """Run the given probes with a single device-to-host transfer and raise the first
    failure, in argument order; the tensors must share one device."""
    flat = [probe for group in probes for probe in group]
    if not flat:
        return
    failed = torch.stack([flag for flag, _, _ in flat]).tolist()
    for is_bad, (_, error, message) in zip(failed, flat):
        if is_bad:
            raise error(message)


def check_not_nan(name: str, value: Tensor) -> None:
    """Raise ``ValueError`` if a floating tensor holds NaN."""
    check_values(nan_probe(name, value))


def check_finite(name: str, value: Tensor) -> None:
    """Raise ``ValueError`` if a floating tensor holds NaN or +-inf."""
    check_values(finite_probe(name, value))


def check_spike_times(name: str, value: Tensor) -> None:
    """Spike times are floating, non-negative or ``+inf``, never NaN."""
    check_values(spike_time_probe(name, value))


def check_binary(name: str, value: Tensor) -> None:
    """Raise ``ValueError`` unless every entry is 0 or 1 (bool tensors always pass)."""
    check_values(binary_probe(name, value))


def check_spike_time(name: str, value: object) -> float:
    """Return one finite spike time ``>= 0`` (a real number or a one-element real tensor)."""
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.dtype == torch.bool or value.is_complex():
            raise TypeError(
                f"{name} must be a number or a one-element real tensor, got a {value.dtype} tensor "
                f"of shape {tuple(value.shape)}"
            )
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    time = float(value)
    if not math.isfinite(time) or time < 0:
        raise ValueError(f"{name} must be a finite time >= 0 (the winner fired), got {time}")
    return time


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a ``bool``, else raise ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def check_device(name: str, value: object) -> Optional[torch.device]:
    """Return ``value`` as a ``torch.device`` (``None`` stays ``None``), else raise."""
    if value is None or isinstance(value, torch.device):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(
            f"{name} must be a torch.device, a device string such as 'cpu' or 'cuda:0', or None, "
            f"got {type(value).__name__} {value!r}"
        )
    try:
        return torch.device(value)
    except RuntimeError as error:
        raise ValueError(f"{name} must name a device such as 'cpu' or 'cuda:0', got {value!r}") from error


def check_floating_dtype(name: str, value: object) -> torch.dtype:
    """Return ``value`` if it is a floating ``torch.dtype``, else raise ``TypeError``."""
    if not isinstance(value, torch.dtype):
        raise TypeError(f"{name} must be a torch.dtype, got {type(value).__name__} {value!r}")
    if not value.is_floating_point:
        raise TypeError(f"{name} must be a floating dtype, got {value}")
    return value


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
