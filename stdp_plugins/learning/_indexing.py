"""Index helpers shared by the core and the reference network."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

try:
    import numpy as np
except ImportError:  # torch does not require NumPy; fall back to torch.nonzero
    np = None


def nonzero_indices(mask: Tensor) -> Tuple[Tensor, ...]:
    """``mask.nonzero(as_tuple=True)``: one int64 index tensor per dimension, in row-major
    order.

    On the CPU, when NumPy is installed, the flat positions come from its
    ``flatnonzero``, which scans a sparse mask about ten times faster than
    ``torch.nonzero``.
    """
    if np is None or mask.device.type != "cpu" or mask.dim() == 0:
        return mask.nonzero(as_tuple=True)
    flat = torch.from_numpy(np.flatnonzero(mask.detach().contiguous().numpy()))
    indices = []
    for size in reversed(mask.shape[1:]):
        indices.append(flat % size)
        flat = flat // size
    return (flat, *reversed(indices))
