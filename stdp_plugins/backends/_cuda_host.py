"""The host build of the CUDA kernels: the ``.cu`` sources of ``cuda/`` compiled as C++ for
the CPU, so that every kernel is checked against the torch reference without a GPU.

``cuda/host_launchers.cpp`` includes ``cuda/host_shim.h`` (which maps ``__global__``, the
block and thread indices, block barriers, warp ballots and shuffles and the atomics onto
loops and coroutines) and then every ``.cu`` file, and exports one ``host_<kernel>`` entry
point per kernel taking the launch dimensions and cuLaunchKernel-style parameters. The
library is built once with the system C++ compiler (``$CXX``, else ``g++`` or ``c++``)
into the native library's cache folder, keyed by the sources and flags, and loaded with
ctypes. It is a testing tool: it runs the kernels one thread after the other.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from importlib import resources
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Tuple

from ._native import _cache_dir

__all__ = ["HOST_FLAGS", "host_build_status", "host_library", "launch_on_host", "reversed_order"]

HOST_FLAGS: Tuple[str, ...] = ("-O2", "-std=c++17", "-ffp-contract=off", "-U_FORTIFY_SOURCE", "-shared", "-fPIC")
"""Compiler flags of the host build (no FMA contraction, like ``--fmad=false`` on the GPU)."""

_ENTRY_FILE = "host_launchers.cpp"
_C_TYPES = {"int": ctypes.c_int, "long": ctypes.c_longlong, "float": ctypes.c_float, "double": ctypes.c_double}

_lock = threading.Lock()
_library: Optional[ctypes.CDLL] = None
_status = "not built yet"
_tried = False


def _sources() -> dict:
    folder = resources.files(__package__).joinpath("cuda")
    return {entry.name: entry.read_text(encoding="utf-8") for entry in folder.iterdir()
            if entry.name.endswith((".cu", ".h", ".cpp"))}


def _compiler() -> Optional[str]:
    for candidate in (os.environ.get("CXX", "").split()[:1] or []) + ["g++", "c++", "clang++"]:
        if shutil.which(candidate):
            return candidate
    return None


def _build(target: Path, texts: dict) -> Optional[str]:
    """Compile the host library to ``target``; ``None`` on success, else the reason."""
    compiler = _compiler()
    if compiler is None:
        return "no C++ compiler was found (set CXX, or install g++ or clang++)"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        for name, text in texts.items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        built = Path(tmp) / target.name
        result = subprocess.run([compiler, *HOST_FLAGS, "-o", str(built), str(Path(tmp) / _ENTRY_FILE)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            return f"{compiler} failed: {lines[-1] if lines else f'exit {result.returncode}'}"
        os.replace(built, target)
    return None


def host_library() -> Optional[ctypes.CDLL]:
    """The host build, compiled on first use; ``None`` when it cannot be built
    (:func:`host_build_status` says why)."""
    global _library, _status, _tried
    with _lock:
        if _tried:
            return _library
        _tried = True
        texts = _sources()
        key = hashlib.sha256((repr(sorted(texts.items())) + repr(HOST_FLAGS) + platform.platform())
                             .encode()).hexdigest()[:16]
        target = _cache_dir() / f"stdp_cuda_host_{key}.so"
        try:
            reason = None if target.exists() else _build(target, texts)
            if reason is None:
                _library, _status = ctypes.CDLL(str(target)), "available"
            else:
                _status = reason
        except OSError as error:
            _status = f"the host build could not be built or loaded: {error}"
        return _library


def host_build_status() -> str:
    """``"available"``, or why the host build of the kernels cannot be used."""
    host_library()
    return _status


def launch_on_host(kernel: Any, grid: Tuple[int, int, int], block: Tuple[int, int, int],
                   arguments: Tuple[Tuple[str, Any], ...]) -> None:
    """Run one kernel of the host build (see :func:`._cuda_kernels.launch`): CPU tensors for
    pointers, ``(kind, value)`` pairs in parameter order."""
    library = host_library()
    if library is None:
        raise RuntimeError(f"the host build of the CUDA kernels is unavailable: {_status}")
    values = [ctypes.c_void_p(value.data_ptr()) if kind == "pointer" else _C_TYPES[kind](value)
              for kind, value in arguments]
    parameters = (ctypes.c_void_p * len(values))(*(ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values))
    dims = (ctypes.c_uint * 6)(*grid, *block)
    entry = getattr(library, f"host_{kernel.name}")
    entry.restype = ctypes.c_int
    if entry(dims, parameters) != 0:
        raise RuntimeError(f"{kernel.name}: a block barrier or warp collective of the host run could not complete")


@contextmanager
def reversed_order() -> Iterator[None]:
    """Within the block, the host build runs the grid's blocks and each block's threads in
    reverse order (in this thread): a kernel whose result then changes has an
    order-dependent race that the GPU, which runs them in any order, would show."""
    library = host_library()
    if library is None:
        raise RuntimeError(f"the host build of the CUDA kernels is unavailable: {_status}")
    library.host_set_reversed_order(1)
    try:
        yield
    finally:
        library.host_set_reversed_order(0)
