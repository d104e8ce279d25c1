"""How a synapse maps onto the core's square convolution (``nn.Linear`` as a 1x1 one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Tuple

from torch import Tensor, nn

__all__ = ["SynapseGeometry", "as_feature_maps", "synapse_geometry"]


def _pair(value: Any) -> Tuple[Any, Any]:
    return (value, value) if not isinstance(value, (tuple, list)) else (value[0], value[-1])


@dataclass(frozen=True)
class SynapseGeometry:
    """How a synapse maps onto the core's square convolution.

    Attributes
    ----------
    kind : str
        ``"conv"`` or ``"linear"``.
    kernel_size, stride, padding : int
        Geometry of the equivalent convolution (``1, 1, 0`` for a linear layer).
    """

    kind: str
    kernel_size: int
    stride: int
    padding: int

    def conv_weight(self, weight: Tensor) -> Tensor:
        """View the synapse's weight as ``[C_out, C_in, k, k]``."""
        return weight if self.kind == "conv" else weight[:, :, None, None]


def synapse_geometry(synapse: nn.Module, name: str = "") -> SynapseGeometry:
    """Check that first-spike STDP supports ``synapse`` and return its geometry.

    Parameters
    ----------
    synapse : nn.Module
        ``nn.Linear`` or ``nn.Conv2d`` (SpikingJelly's ``layer.Linear`` / ``layer.Conv2d``
        are subclasses of these).
    name : str
        Name used in error messages (e.g. the module's path in the model).

    Returns
    -------
    SynapseGeometry

    Raises
    ------
    TypeError
        If ``synapse`` is not an ``nn.Module``.
    NotImplementedError
        For any other layer, and for grouped, dilated, non-square or non-zero-padded
        convolutions; the message names the layer.
    """
    if not isinstance(synapse, nn.Module):
        raise TypeError(f"synapse must be an nn.Module (nn.Conv2d or nn.Linear), got {type(synapse).__name__}")
    label = f"layer {name!r} ({synapse!r})" if name else repr(synapse)
    if isinstance(synapse, nn.Linear):
        return SynapseGeometry("linear", 1, 1, 0)
    if not isinstance(synapse, nn.Conv2d):
        raise NotImplementedError(
            f"first-spike STDP supports nn.Conv2d and nn.Linear synapses, got {label}"
        )
    problems = []
    if synapse.groups != 1:
        problems.append(f"groups={synapse.groups} (grouped convolution)")
    if tuple(synapse.dilation) != (1, 1):
        problems.append(f"dilation={tuple(synapse.dilation)} (dilated convolution)")
    if synapse.padding_mode != "zeros":
        problems.append(f"padding_mode={synapse.padding_mode!r} (only 'zeros' padding counts as no spike)")
    kernel_h, kernel_w = synapse.kernel_size
    stride_h, stride_w = synapse.stride
    padding = synapse.padding
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        padding = ((kernel_h - 1) // 2, (kernel_w - 1) // 2)
        if kernel_h % 2 == 0 or kernel_w % 2 == 0:
            problems.append("padding='same' with an even kernel (asymmetric padding)")
    pad_h, pad_w = _pair(padding)
    if kernel_h != kernel_w or stride_h != stride_w or pad_h != pad_w:
        problems.append(
            f"kernel_size={synapse.kernel_size}, stride={synapse.stride}, padding={synapse.padding} "
            "(kernel, stride and padding must be the same along both axes)"
        )
    if problems:
        raise NotImplementedError(f"first-spike STDP does not support {label}: {'; '.join(problems)}")
    return SynapseGeometry("conv", int(kernel_h), int(stride_h), int(pad_h))


def as_feature_maps(x: Tensor, name: str, time_major: bool = False) -> Tensor:
    """View ``[.., N, C]`` activity as ``[.., N, C, 1, 1]``; pass ``[.., N, C, H, W]`` through.

    Parameters
    ----------
    x : Tensor
        Activity of a linear (``[N, C]``) or convolutional (``[N, C, H, W]``) layer, with
        a leading time dimension when ``time_major``.
    name : str
        Argument name for the error message.
    time_major : bool
        Whether ``x`` has a leading time dimension.
    """
    lead = 1 if time_major else 0
    if x.dim() == lead + 2:
        return x[..., None, None]
    if x.dim() == lead + 4:
        return x
    layout = "[T, N, C] or [T, N, C, H, W]" if time_major else "[N, C] or [N, C, H, W]"
    raise ValueError(f"{name} must be {layout}, got shape {tuple(x.shape)}")
