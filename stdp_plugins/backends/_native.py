"""The native CPU library: C sources shipped with the package, compiled once and cached.

The sources live in ``stdp_plugins/backends/csrc`` (``learning.c``: first spikes, winner
selection, STDP step; ``first_spike_conv.c``: the event-driven first-spike convolution).
They are compiled with the system C compiler into a cache folder (``$STDP_PLUGINS_CACHE``
or ``~/.cache/stdp_plugins``), keyed by the sources, the flags and the CPU, and loaded with
ctypes; every call releases the GIL. When no library can be had (no compiler, a failed
build, ``STDP_PLUGINS_NO_NATIVE=1``) :func:`native_library` returns ``None`` and the
dispatchers run the torch reference instead; the first time that happens where the
native path would have run, one warning says why and what it costs.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import warnings
from importlib import resources
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

__all__ = [
    "NEVER", "codes_to_times", "native_available", "native_library", "native_status", "times_to_codes",
    "warn_native_unavailable", "wta_mode_bits",
]

#: Spike time code for "never fired" in the uint8 time maps of the event-driven kernel.
NEVER = 255

SOURCES = ("learning.c", "first_spike_conv.c")
"""The C files of the library, inside ``stdp_plugins/backends/csrc``."""

#: Compiler flags, tried in order. No FMA contraction: the STDP step must round like
#: torch's separate multiply and add.
_FLAG_SETS = (["-O3", "-march=native", "-ffp-contract=off"], ["-O3", "-ffp-contract=off"])

_P, _I, _L, _F, _D = ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_float, ctypes.c_double
_SIGNATURES = {
    # name: (restype, argtypes)
    "first_spike_conv": (_I, [_I, _I, _I, _I, _P, _I, _I, _I, _P, _D, _I, _I, _I, _P, _P, _P, _I, _I, _I, _P, _P,
                              _P, _L]),
    "first_spike_conv_scratch": (_L, [_I] * 7),
    "first_spike": (None, [_L, _L, _L, _P, _P, _I, _P, _P]),
    "select_winners": (_I, [_I, _I, _I, _I, _P, _P, _I, _I, _I, _I, _P]),
    "stdp_groups": (None, [_I, *[_P] * 6, *[_I] * 6, _P, _F, _F, _I, _F, _F, _I, _P]),
    "fire_once": (None, [_L, _L, _L, _P, _F, _P, _P, _P, _P]),
    "first_spike_only": (None, [_L, _L, _L, _P, _P, _P]),
    "codes_to_times": (None, [_L, _P, _P]),
}

_lock = threading.Lock()
_library: Optional[ctypes.CDLL] = None
_status = "not built yet"
_tried = False
_warned = False


def _cache_dir() -> Path:
    root = os.environ.get("STDP_PLUGINS_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stdp_plugins"


def _cpu_tag() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith(("model name", "flags")):
                    return line
    except OSError:  # no /proc (macOS, ...): the platform's processor name keys the cache
        return platform.processor()
    return platform.processor()


def _source_texts() -> dict:
    folder = resources.files(__package__).joinpath("csrc")
    return {name: folder.joinpath(name).read_text(encoding="utf-8")
            for name in (*SOURCES, "stdp_native.h")}


def _compile(target: Path, texts: dict) -> Optional[str]:
    """Build the library at ``target``; ``None`` on success, else the reason."""
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        compiler = "cc"
        if shutil.which(compiler) is None:
            return "no C compiler was found (set CC, or install gcc or clang)"
    target.parent.mkdir(parents=True, exist_ok=True)
    error = ""
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        for name, text in texts.items():
            (Path(tmp) / name).write_text(text)
        built = Path(tmp) / target.name
        for flags in _FLAG_SETS:
            cmd = [compiler, *flags, "-shared", "-fPIC", "-o", str(built), *(str(Path(tmp) / s) for s in SOURCES)]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode == 0:
                os.replace(built, target)
                return None
            error = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
    return f"{compiler} failed: {error}"


def _load() -> None:
    global _library, _status
    if os.environ.get("STDP_PLUGINS_NO_NATIVE"):
        _status = "disabled by STDP_PLUGINS_NO_NATIVE"
        return
    if sys.platform == "win32":
        _status = "not supported on Windows"
        return
    texts = _source_texts()
    key = hashlib.sha256((repr(sorted(texts.items())) + repr(_FLAG_SETS) + platform.platform() + _cpu_tag())
                         .encode()).hexdigest()[:16]
    target = _cache_dir() / f"stdp_native_{key}.so"
    try:
        if not target.exists():
            reason = _compile(target, texts)
            if reason is not None:
                _status = reason
                return
        library = ctypes.CDLL(str(target))
    except OSError as error:
        _status = f"the library could not be built or loaded: {error}"
        return
    for name, (restype, argtypes) in _SIGNATURES.items():
        function = getattr(library, name)
        function.restype = restype
        function.argtypes = argtypes
    _library, _status = library, "available"


def native_library() -> Optional[ctypes.CDLL]:
    """The compiled library, building it on first use; ``None`` if unavailable.

    Set ``STDP_PLUGINS_NO_NATIVE=1`` to disable it (the torch reference runs instead).
    """
    global _tried
    with _lock:
        if not _tried:
            _tried = True
            _load()
        return _library


def native_available() -> bool:
    """Whether the native CPU library could be built and loaded on this machine."""
    return native_library() is not None


def native_status() -> str:
    """``"available"``, or why the native library cannot be used."""
    native_library()
    return _status


def warn_native_unavailable() -> None:
    """Warn once per process that the torch reference runs where native code would (not when
    ``STDP_PLUGINS_NO_NATIVE`` asked for it)."""
    global _warned
    if _warned or os.environ.get("STDP_PLUGINS_NO_NATIVE"):
        return
    _warned = True
    warnings.warn(
        f"stdp_plugins: the native CPU kernels are unavailable ({native_status()}); the torch "
        "reference implementation runs instead, with the same results but slower (training layer 1 "
        "of the reference network measured about 45x slower on 2 cores). Install a C compiler "
        "(e.g. gcc) to get the native kernels; STDP_PLUGINS_NO_NATIVE=1 chooses torch silently.",
        RuntimeWarning,
        stacklevel=3,
    )


def times_to_codes(times: Tensor, time_steps: int) -> Tensor:
    """Spike times (float, ``inf`` = never) to uint8 codes (``255`` = never, or ``>= time_steps``)."""
    if time_steps >= NEVER:
        raise ValueError(f"time_steps must be < {NEVER} for uint8 spike codes, got {time_steps}")
    return torch.where(times < time_steps, times, NEVER).to(torch.uint8)


def codes_to_times(codes: Tensor) -> Tensor:
    """uint8 spike codes back to float32 times (``255`` becomes ``inf``); one pass of the
    C library on the CPU (a training step's batch: torch's three passes took longer than the
    layer-2 kernel)."""
    library = native_library() if codes.device.type == "cpu" and codes.dtype == torch.uint8 else None
    if library is None:
        times = codes.to(torch.float32)
        return times.masked_fill_(codes == NEVER, math.inf)
    codes = codes.contiguous()
    times = torch.empty(codes.shape, dtype=torch.float32)
    library.codes_to_times(codes.numel(), codes.data_ptr(), times.data_ptr())
    return times


def wta_mode_bits(mode) -> int:
    """The C library's encoding of a :class:`~stdp_plugins.learning.WTAMode`: bit 1 blocks
    the winner's channel (GLOBAL), bit 2 its neighbourhood (LOCAL); BOTH sets both."""
    name = mode.name
    return (name in ("GLOBAL", "BOTH")) + 2 * (name in ("LOCAL", "BOTH"))
