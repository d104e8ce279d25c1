"""The fused batch STDP update: one dispatch function, a torch path and a CuPy path.

:func:`fused_winner_update` applies a whole batch of winners' first-spike STDP updates to a
convolution's weights in place and returns the per-channel convergence. On float32 CUDA
tensors with CuPy installed it runs the raw CUDA kernel of ``fused_stdp.cu`` (one launch on
torch's current stream); elsewhere it runs the vectorised torch core.
"""

from .cupy_backend import cupy_available, kernel_source
from .dispatch import BACKENDS, REDUCTIONS, fused_winner_update, select_backend

__all__ = ["BACKENDS", "REDUCTIONS", "cupy_available", "fused_winner_update", "kernel_source", "select_backend"]
