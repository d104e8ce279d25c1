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
   out_times [n][ho][wo][c_out] float32 (channel-last) first-spike step, +inf = never; or
             NULL (then only the winners' times are reported, in out_win_t)
   out_pot   [n][ho][wo][c_out] float64 (channel-last) or NULL: potential at the first
             spike, 0 if never
   out_best  [n][ho][wo] int32 or NULL, pointwise inhibition: at each position the
             channel that fired first, ties to the highest potential, then the lowest
             channel (-1 when none fired)
   out_win   [n][k_winners] int32 or NULL: the learning winners among the pointwise
             survivors, as flat indices c * ho * wo + y * wo + x in the order accepted, -1
             after the last. Survivors are walked by earliest time, highest potential,
             lowest flat index; one is accepted unless an accepted winner blocks it: mode
             bit 1 (global) its channel, bit 2 (local) every position within Chebyshev
             distance `radius`.
   out_win_t [n][k_winners] float32 or NULL: the winners' spike times
   scratch   working memory of first_spike_conv_scratch() bytes, reused between calls
             (allocated here when NULL or too small)
   Potentials are accumulated channel-last, like the outputs, so that the threshold test
   of a position is one vectorised pass over its channels. Returns 0, or -1 when out of
   memory. */
static void *take(char *base, long *offset, long bytes)
{
    void *block = base + *offset;
    *offset += (bytes + 63) / 64 * 64;
    return block;
}

/* Bytes of working memory first_spike_conv needs (one image at a time). */
long first_spike_conv_scratch(int c_in, int h, int w, int c_out, int ho, int wo, int time_steps)
{
    const long n_in = (long)c_in * h * w, n_pos = (long)ho * wo, n_out = n_pos * c_out;
    const long sizes[11] = {8 * n_out, 8 * n_pos, 4 * n_in, 4 * (time_steps + 1L), 4 * n_pos, 4 * n_pos,
                            4 * n_pos, 4 * n_pos, n_pos, c_out, 4 * n_out};
    long total = 0;
    for (int i = 0; i < 11; ++i) total += (sizes[i] + 63) / 64 * 64;
    return total;
}

int first_spike_conv(int n, int c_in, int h, int w, const uint8_t *in_times,
                     int c_out, int k, int pad, const double *weight_t,
                     double threshold, int time_steps, int ho, int wo,
                     float *out_times, double *out_pot, int32_t *out_best,
                     int k_winners, int radius, int mode, int32_t *out_win, float *out_win_t,
                     void *scratch, long scratch_bytes)
{
    const long n_in = (long)c_in * h * w;
    const long n_pos = (long)ho * wo;
    const long n_out = n_pos * c_out;
    char *owned = 0;
    char *base = (char *)scratch;
    const long need = first_spike_conv_scratch(c_in, h, w, c_out, ho, wo, time_steps);
    if (!base || scratch_bytes < need) {
        owned = (char *)malloc(need);
        if (!owned) return -1;
        base = owned;
    }
    /* scratch layout: blocks rounded up to 64 bytes, in the order of the sizes above */
    long offset = 0;
    double *pot = (double *)take(base, &offset, sizeof(double) * n_out);
    double *survivor_pot = (double *)take(base, &offset, sizeof(double) * n_pos);
    int *events = (int *)take(base, &offset, sizeof(int) * n_in);
    int *start = (int *)take(base, &offset, sizeof(int) * (time_steps + 1L));
    int *mark = (int *)take(base, &offset, sizeof(int) * n_pos);
    int *touched = (int *)take(base, &offset, sizeof(int) * n_pos);
    int32_t *survivor = (int32_t *)take(base, &offset, sizeof(int32_t) * n_pos);
    float *survivor_t = (float *)take(base, &offset, sizeof(float) * n_pos);
    uint8_t *blocked_pos = (uint8_t *)take(base, &offset, n_pos);
    uint8_t *blocked_ch = (uint8_t *)take(base, &offset, c_out);
    float *own_times = (float *)take(base, &offset, sizeof(float) * n_out);
    for (int img = 0; img < n; ++img) {
        const uint8_t *tin = in_times + (long)img * n_in;
        float *tout = out_times ? out_times + (long)img * n_out : own_times;
        double *pout = out_pot ? out_pot + (long)img * n_out : 0;
        memset(pot, 0, sizeof(double) * n_out);
        for (long i = 0; i < n_out; ++i) tout[i] = INFINITY;
        if (pout) memset(pout, 0, sizeof(double) * n_out);
        for (long p = 0; p < n_pos; ++p) { mark[p] = -1; survivor[p] = -1; }
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
            const float now_t = (float)t;
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
            /* neurons of the touched positions that reach the threshold now fire: one
               branch-free pass per position marks them and writes their time */
            for (int j = 0; j < n_touched; ++j) {
                const long p = touched[j];
                const double *restrict pp = pot + p * c_out;
                float *restrict tp = tout + p * c_out;
                /* a neuron fires now if it reached the threshold and has no time yet */
                int crossed = 0;
                for (int o = 0; o < c_out; ++o) {
                    const float candidate = pp[o] >= threshold ? now_t : INFINITY;
                    crossed |= candidate < tp[o];
                    tp[o] = candidate < tp[o] ? candidate : tp[o];
                }
                if (!crossed) continue;
                if (pout) {
                    double *restrict po = pout + p * c_out;
                    for (int o = 0; o < c_out; ++o) po[o] = tp[o] == now_t ? pp[o] : po[o];
                }
                if ((out_best || out_win) && survivor[p] < 0) {
                    /* first spikes at this position: the highest potential among them
                       survives, ties to the lowest channel. Those potentials are > 0, so
                       their bit patterns order like int64: a vectorisable integer maximum,
                       then the first channel holding it */
                    const union bits64 { double d; int64_t i; } *restrict pb = (const union bits64 *)pp;
                    int64_t top = -1;
                    for (int o = 0; o < c_out; ++o) {
                        const int64_t v = tp[o] == now_t ? pb[o].i : -1;
                        top = v > top ? v : top;
                    }
                    int best = 0;
                    while (!(tp[best] == now_t && pb[best].i == top)) ++best;
                    survivor[p] = best; survivor_t[p] = now_t; survivor_pot[p] = pp[best];
                }
            }
            begin = end;
        }
        if (out_best) memcpy(out_best + (long)img * n_pos, survivor, sizeof(int32_t) * n_pos);
        if (out_win) {
            int32_t *wout = out_win + (long)img * k_winners;
            memset(blocked_pos, 0, n_pos);
            memset(blocked_ch, 0, c_out);
            float *wtout = out_win_t ? out_win_t + (long)img * k_winners : 0;
            for (int i = 0; i < k_winners; ++i) wout[i] = -1;
            for (int i = 0; i < k_winners; ++i) {
                long best = -1, best_flat = 0;
                for (long p = 0; p < n_pos; ++p) {
                    const int c = survivor[p];
                    if (c < 0 || blocked_pos[p] || blocked_ch[c]) continue;
                    const long flat = (long)c * n_pos + p;
                    if (best < 0 || survivor_t[p] < survivor_t[best]
                            || (survivor_t[p] == survivor_t[best] && (survivor_pot[p] > survivor_pot[best]
                                || (survivor_pot[p] == survivor_pot[best] && flat < best_flat)))) {
                        best = p; best_flat = flat;
                    }
                }
                if (best < 0) break;
                wout[i] = (int32_t)best_flat;
                if (wtout) wtout[i] = survivor_t[best];
                blocked_pos[best] = 1; /* a position's only survivor is now taken */
                if (mode & 1) blocked_ch[survivor[best]] = 1;
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
    free(owned);
    return 0;
}

/* The torch core's sequential_stdp_update_ for float32 weights: the winners, sorted by
   sample and then channel (torch's nonzero order), are grouped per (sample, channel); in
   that order each group's step is applied and clamped:
       frac = potentiating winners / winners of the group       (per synapse)
       w   <- clamp(w + f(w) * (s * frac - m), lo, hi),  f(w) = (w - lo) * (hi - w) or 1,
   with the float32 roundings of torch's separate operations (built without FMA
   contraction). A synapse potentiates when its input fired (code < time_steps) no later
   than the winner (code <= t_post); padding and later or missing inputs depress.
   count: scratch of c_in * k * k ints. */
void sequential_stdp(int n_win, const int64_t *sample, const int64_t *channel, const int64_t *wy,
                     const int64_t *wx, const float *t_post, const uint8_t *in_codes, int c_in, int h,
                     int w, int time_steps, int k, int stride, int pad, float *weight, float s, float m,
                     int additive, float lo, float hi, int *count)
{
    const int kk = c_in * k * k;
    int g = 0;
    while (g < n_win) {
        int e = g;
        while (e < n_win && sample[e] == sample[g] && channel[e] == channel[g]) ++e;
        memset(count, 0, sizeof(int) * kk);
        for (int i = g; i < e; ++i) {
            const uint8_t *tin = in_codes + sample[i] * (long)c_in * h * w;
            for (int ci = 0; ci < c_in; ++ci)
                for (int dy = 0; dy < k; ++dy) {
                    const long iy = wy[i] * stride - pad + dy;
                    for (int dx = 0; dx < k; ++dx) {
                        const long ix = wx[i] * stride - pad + dx;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                        const uint8_t code = tin[((long)ci * h + iy) * w + ix];
                        count[(ci * k + dy) * k + dx] += code < time_steps && (float)code <= t_post[i];
                    }
                }
        }
        const float wins = (float)(e - g);
        float *wc = weight + channel[g] * (long)kk;
        for (int j = 0; j < kk; ++j) {
            const float frac = (float)count[j] / wins;
            const float rate = s * frac - m;
            const float f = additive ? 1.0f : (wc[j] - lo) * (hi - wc[j]);
            const float v = wc[j] + f * rate;
            wc[j] = v < lo ? lo : (v > hi ? hi : v);
        }
        g = e;
    }
}
"""

#: Compiler flags, tried in order. No FMA contraction: the STDP step must round like
#: torch's separate multiply and add.
_FLAG_SETS = (["-O3", "-march=native", "-ffp-contract=off"], ["-O3", "-ffp-contract=off"])

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
        for flags in _FLAG_SETS:
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
        key = hashlib.sha256((_SOURCE + repr(_FLAG_SETS) + platform.platform() + _cpu_tag()).encode()).hexdigest()[:16]
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
            ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
            ctypes.c_void_p, ctypes.c_long,
        ]
        scratch = library.first_spike_conv_scratch
        scratch.restype = ctypes.c_long
        scratch.argtypes = [ctypes.c_int] * 7
        stdp = library.sequential_stdp
        stdp.restype = None
        stdp.argtypes = [
            ctypes.c_int, *[ctypes.c_void_p] * 6, *[ctypes.c_int] * 7, ctypes.c_void_p,
            ctypes.c_float, ctypes.c_float, ctypes.c_int, ctypes.c_float, ctypes.c_float, ctypes.c_void_p,
        ]
        _library = library
        return _library
