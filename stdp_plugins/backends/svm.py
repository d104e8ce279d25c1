"""The native linear read-out: one-vs-rest squared-hinge SVMs on binary features by
liblinear's dual coordinate descent (``svm_dual_binary`` in ``csrc/learning.c``), the
problem of ``sklearn.svm.LinearSVC(dual=True)``. It keeps only the column indices of the
active features (uint16 up to 65,536 features; no values, no solver copy of the data) and
fits the classes on all worker threads, each taking the next class as it finishes one."""

from __future__ import annotations

import ctypes
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from ._native import native_library
from ._threads import parallel_items

__all__ = ["native_binary_svm"]

_P, _I, _D, _U64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_uint64
_SIGNATURE = (_I, [_I, _I, _P, _P, _P, _P, _I, _I, _D, _D, _I, _U64, _P, _P])


def native_binary_svm(indptr: np.ndarray, indices: np.ndarray, label_index: np.ndarray, n_classes: int,
                      width: int, c: float, tol: float, max_iter: int, seed: int
                      ) -> Optional[Tuple[Tensor, Tensor, int]]:
    """Fit the read-out on binary rows (CSR ``indptr`` int64, ``indices`` uint16 for widths
    up to 65,536 or int32, every value 1) with class indices ``label_index`` (int32,
    ``0 .. n_classes - 1``).

    Returns ``(weight [K, width], bias [K], passes)`` as float64 tensors and the most
    passes any class took, with ``K = n_classes`` (``K = 1`` for two classes: the second
    class against the first), or ``None`` when the native library is unavailable.
    """
    library = native_library()
    if library is None:
        return None
    function = library.svm_dual_binary
    function.restype, function.argtypes = _SIGNATURE
    n = indptr.size - 1
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    narrow = width <= 65536
    indices = np.ascontiguousarray(indices, dtype=np.uint16 if narrow else np.int32)
    indices16, indices32 = (indices.ctypes.data, None) if narrow else (None, indices.ctypes.data)
    labels = np.ascontiguousarray(label_index, dtype=np.int32)
    weights = np.zeros((n_classes, width + 1))
    passes = np.zeros(n_classes, dtype=np.int32)
    first = 1 if n_classes == 2 else 0

    def run(item: int) -> int:  # one class; the classes' passes differ (about 100 to 230)
        return function(n, width, indptr.ctypes.data, indices16, indices32, labels.ctypes.data, first + item,
                        first + item + 1, c, tol, max_iter, seed, weights.ctypes.data, passes.ctypes.data)

    if any(status != 0 for status in parallel_items(n_classes - first, run)):
        raise MemoryError("the native read-out could not allocate its buffers")
    fitted = torch.from_numpy(weights[first:])
    return fitted[:, :width].contiguous(), fitted[:, width].contiguous(), int(passes[first:].max())
