"""Event-driven first-spike convolution in C, compiled on first use and loaded with ctypes.

The kernel walks the input spikes of each image in time order and adds each spike's
weights to the potentials of the outputs that see it; after every time step it checks
only the outputs touched in that step. Work is proportional to the number of spikes, not
to ``time_steps x`` a dense convolution. Potentials are accumulated in float64, so the sums
of float32 weights are exact and do not depend on the order of the spikes.

The shared library is built with the system C compiler into a cache folder
(``$STDP_PLUGINS_CACHE`` or ``~/.cache/stdp_plugins``). Without a compiler
:func:`native_library` returns ``None`` and callers use the dense torch path.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from typing import Optional

__all__ = ["native_library", "NEVER"]

#: Spike time code for "never fired" in the uint8 time maps the kernel reads and writes.
NEVER = 255

_SOURCE = r"""
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <math.h>

/* in_times  [n][c_in][h][w]   uint8, 255 = never
   weight_t  [c_in][k][k][c_out] float64 (transposed weights)
   out_times [n][c_out][ho][wo] float32 first-spike step, +inf = never
   out_pot   [n][c_out][ho][wo] float64, potential at the first spike (0 if never);
             may be NULL when the potentials are not needed
   out_best  [n][ho][wo] int32, pointwise inhibition: at each position the channel that
             fired first, ties to the highest potential, then the lowest channel (-1 when
             none fired); may be NULL
   out_win   [n][k_winners] int32 or NULL: the learning winners among the pointwise
             survivors (needs out_best), as flat indices c * ho * wo + y * wo + x in the
             order accepted, -1 after the last. Survivors are walked by earliest time,
             highest potential, lowest flat index; one is accepted unless an accepted
             winner blocks it: mode bit 1 (global) its channel, bit 2 (local) every
             position within Chebyshev distance `radius`.
   Potentials are accumulated channel-last ([ho][wo][c_out]); outputs are written when a
   neuron fires. Returns 0, or -1 when out of memory. */
int first_spike_conv(int n, int c_in, int h, int w, const uint8_t *in_times,
                     int c_out, int k, int pad, const double *weight_t,
                     double threshold, int time_steps, int ho, int wo,
                     float *out_times, double *out_pot, int32_t *out_best,
                     int k_winners, int radius, int mode, int32_t *out_win)
{
    const long n_in = (long)c_in * h * w;
    const long n_pos = (long)ho * wo;
    const long n_out = n_pos * c_out;
    double *pot = (double *)malloc(sizeof(double) * (n_out > 0 ? n_out : 1));
    uint8_t *fired = (uint8_t *)malloc(n_out > 0 ? n_out : 1);
    int *events = (int *)malloc(sizeof(int) * (n_in > 0 ? n_in : 1));
    int *start = (int *)malloc(sizeof(int) * (time_steps + 1));
    int *mark = (int *)malloc(sizeof(int) * (n_pos > 0 ? n_pos : 1));
    int *touched = (int *)malloc(sizeof(int) * (n_pos > 0 ? n_pos : 1));
    double *best_pot = (double *)malloc(sizeof(double) * (n_pos > 0 ? n_pos : 1));
    uint8_t *blocked_pos = (uint8_t *)malloc(n_pos > 0 ? n_pos : 1);
    uint8_t *blocked_ch = (uint8_t *)malloc(c_out > 0 ? c_out : 1);
    if (!pot || !fired || !events || !start || !mark || !touched || !best_pot || !blocked_pos || !blocked_ch) {
        free(pot); free(fired); free(events); free(start); free(mark); free(touched); free(best_pot);
        free(blocked_pos); free(blocked_ch);
        return -1;
    }
    for (int img = 0; img < n; ++img) {
        const uint8_t *tin = in_times + (long)img * n_in;
        float *tout = out_times + (long)img * n_out;
        double *pout = out_pot ? out_pot + (long)img * n_out : 0;
        int32_t *bout = out_best ? out_best + (long)img * n_pos : 0;
        memset(pot, 0, sizeof(double) * n_out);
        memset(fired, 0, n_out);
        for (long i = 0; i < n_out; ++i) tout[i] = INFINITY;
        if (pout) memset(pout, 0, sizeof(double) * n_out);
        if (bout) for (long p = 0; p < n_pos; ++p) bout[p] = -1;
        for (long p = 0; p < n_pos; ++p) mark[p] = -1;
        /* counting sort of the input spikes by time (stable: flat index order) */
        for (int t = 0; t <= time_steps; ++t) start[t] = 0;
        for (long i = 0; i < n_in; ++i) if (tin[i] < time_steps) start[tin[i] + 1]++;
        for (int t = 0; t < time_steps; ++t) start[t + 1] += start[t];
        for (int t = time_steps; t > 0; --t) start[t] = start[t - 1];
        start[0] = 0;
        for (long i = 0; i < n_in; ++i) if (tin[i] < time_steps) events[start[tin[i] + 1]++] = (int)i;
        /* start[t + 1] now holds the end of step t; step t begins at start[t] (start[0] = 0) */
        int begin = 0;
        for (int t = 0; t < time_steps; ++t) {
            const int end = start[t + 1];
            int n_touched = 0;
            for (int e = begin; e < end; ++e) {
                const int i = events[e];
                const int c = i / (h * w), y = (i / w) % h, x = i % w;
                for (int dy = 0; dy < k; ++dy) {
                    const int oy = y + pad - dy;
                    if (oy < 0 || oy >= ho) continue;
                    for (int dx = 0; dx < k; ++dx) {
                        const int ox = x + pad - dx;
                        if (ox < 0 || ox >= wo) continue;
                        const long p = (long)oy * wo + ox;
                        const double *restrict wrow = weight_t + (((long)c * k + dy) * k + dx) * c_out;
                        double *restrict pp = pot + p * c_out;
                        for (int o = 0; o < c_out; ++o) pp[o] += wrow[o];
                        if (mark[p] != t) { mark[p] = t; touched[n_touched++] = (int)p; }
                    }
                }
            }
            /* neurons of the touched positions that cross the threshold now fire; scanning
               channels upwards, a strictly higher potential takes the position's survivor */
            for (int j = 0; j < n_touched; ++j) {
                const long p = touched[j];
                const double *restrict pp = pot + p * c_out;
                uint8_t *restrict fp = fired + p * c_out;
                int crossed = 0; /* branch-free (vectorised) test first: most positions have none */
                for (int o = 0; o < c_out; ++o) crossed |= (pp[o] >= threshold) & (fp[o] == 0);
                if (!crossed) continue;
                for (int o = 0; o < c_out; ++o) {
                    if (fp[o] || pp[o] < threshold) continue;
                    fp[o] = 1;
                    tout[(long)o * n_pos + p] = (float)t;
                    if (pout) pout[(long)o * n_pos + p] = pp[o];
                    if (bout) {
                        const int b = bout[p];
                        if (b < 0) { bout[p] = o; best_pot[p] = pp[o]; }
                        else if (tout[(long)b * n_pos + p] == (float)t && pp[o] > best_pot[p]) {
                            bout[p] = o; best_pot[p] = pp[o];
                        }
                    }
                }
            }
            begin = end;
        }
        if (out_win && bout) {
            int32_t *wout = out_win + (long)img * k_winners;
            memset(blocked_pos, 0, n_pos);
            memset(blocked_ch, 0, c_out);
            for (int i = 0; i < k_winners; ++i) wout[i] = -1;
            for (int i = 0; i < k_winners; ++i) {
                long best = -1, best_flat = 0;
                float best_t = 0.0f;
                double best_p = 0.0;
                for (long p = 0; p < n_pos; ++p) {
                    const int c = bout[p];
                    if (c < 0 || blocked_pos[p] || blocked_ch[c]) continue;
                    const float t = tout[(long)c * n_pos + p];
                    const long flat = (long)c * n_pos + p;
                    if (best < 0 || t < best_t || (t == best_t && (best_pot[p] > best_p
                            || (best_pot[p] == best_p && flat < best_flat)))) {
                        best = p; best_flat = flat; best_t = t; best_p = best_pot[p];
                    }
                }
                if (best < 0) break;
                wout[i] = (int32_t)best_flat;
                blocked_pos[best] = 1; /* a position's only survivor is now taken */
                if (mode & 1) blocked_ch[bout[best]] = 1;
                if (mode & 2) {
                    const int by = (int)(best / wo), bx = (int)(best % wo);
                    for (int y = by - radius; y <= by + radius; ++y) {
                        if (y < 0 || y >= ho) continue;
                        for (int x = bx - radius; x <= bx + radius; ++x)
                            if (x >= 0 && x < wo) blocked_pos[(long)y * wo + x] = 1;
                    }
                }
            }
        }
    }
    free(pot); free(fired); free(events); free(start); free(mark); free(touched); free(best_pot);
    free(blocked_pos); free(blocked_ch);
    return 0;
}
"""

_lock = threading.Lock()
_library: Optional[ctypes.CDLL] = None
_tried = False


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
    except OSError:
        pass
    return platform.processor()


def _compile(target: Path) -> bool:
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    compiler = compiler.split()[0]
    if shutil.which(compiler) is None:
        compiler = "cc"
        if shutil.which(compiler) is None:
            return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        source = Path(tmp) / "first_spike.c"
        source.write_text(_SOURCE)
        built = Path(tmp) / target.name
        for flags in (["-O3", "-march=native"], ["-O3"]):
            cmd = [compiler, *flags, "-shared", "-fPIC", "-o", str(built), str(source)]
            if subprocess.run(cmd, capture_output=True).returncode == 0:
                os.replace(built, target)
                return True
    return False


def native_library() -> Optional[ctypes.CDLL]:
    """The compiled event-driven kernel, building it on first use; ``None`` if unavailable.

    Set ``STDP_PLUGINS_NO_NATIVE=1`` to disable it (the dense torch path is used instead).
    """
    global _library, _tried
    with _lock:
        if _tried:
            return _library
        _tried = True
        if os.environ.get("STDP_PLUGINS_NO_NATIVE") or sys.platform == "win32":
            return None
        key = hashlib.sha256((_SOURCE + platform.platform() + _cpu_tag()).encode()).hexdigest()[:16]
        target = _cache_dir() / f"first_spike_{key}.so"
        try:
            if not target.exists() and not _compile(target):
                return None
            library = ctypes.CDLL(str(target))
        except OSError:
            return None
        fn = library.first_spike_conv
        fn.restype = ctypes.c_int
        fn.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
            ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
            ctypes.c_double, ctypes.c_int, ctypes.c_int, ctypes.c_int,
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
            ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
        ]
        _library = library
        return _library
