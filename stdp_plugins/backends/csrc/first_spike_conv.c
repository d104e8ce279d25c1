/* Event-driven first-spike convolution of non-leaky, fire-once IF neurons (the reference
   network's layers); the semantics are those of docs/spec.md, 'First-spike convolution'. */
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <math.h>

#include "stdp_native.h"

/* in_times  [n][c_in][h][w]   float32 spike times: t < time_steps spikes at step (int)t
             (times are whole steps), anything else (+inf) never
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
   of a position is one vectorised pass over its channels. The working arrays are cleared
   once per call and, after each image, only at the positions it reached. The winners are
   walked step by step (walk_new_survivors); when they are the only output (training), an
   image stops at the step its k-th winner is accepted. Returns 0, or -1 when out of
   memory. */
static void *take(char *base, long *offset, long bytes)
{
    void *block = base + *offset;
    *offset += (bytes + 63) / 64 * 64;
    return block;
}

/* Runs the statements after `row` for every output position `p` (long) that input `i`
   (flat index of a c_in x h x w map) reaches through a k x k window with padding `pad` on
   an ho x wo output, with `row` (int) the weight row (c * k + dy) * k + dx it reaches it
   through. A macro, not a function: the event loop's adds stay in one loop nest (a helper
   filling position lists cost the kernel a third of its speed). */
#define FOR_EACH_REACHED(i, h, w, k, pad, ho, wo, p, row, ...)                             \
    do {                                                                                 \
        const int c_ = (i) / ((h) * (w)), y_ = ((i) / (w)) % (h), x_ = (i) % (w);         \
        for (int dy_ = 0; dy_ < (k); ++dy_) {                                             \
            const int oy_ = y_ + (pad) - dy_;                                             \
            if (oy_ < 0 || oy_ >= (ho)) continue;                                         \
            for (int dx_ = 0; dx_ < (k); ++dx_) {                                         \
                const int ox_ = x_ + (pad) - dx_;                                         \
                if (ox_ < 0 || ox_ >= (wo)) continue;                                     \
                const long p = (long)oy_ * (wo) + ox_;                                    \
                const int row = (c_ * (k) + dy_) * (k) + dx_;                             \
                __VA_ARGS__                                                              \
            }                                                                            \
        }                                                                                \
    } while (0)

/* Bytes of working memory first_spike_conv needs (one image at a time). */
long first_spike_conv_scratch(int c_in, int h, int w, int c_out, int ho, int wo, int time_steps)
{
    const long n_in = (long)c_in * h * w, n_pos = (long)ho * wo, n_out = n_pos * c_out;
    const long sizes[13] = {8 * n_out, 8 * n_pos, 4 * n_in, 4 * n_in, 4 * (time_steps + 1L), 4 * n_pos,
                            4 * n_pos, 4 * n_pos, n_pos, c_out, 4 * n_out, 4 * n_pos, 4 * n_pos};
    long total = 0;
    for (int i = 0; i < 13; ++i) total += (sizes[i] + 63) / 64 * 64;
    return total;
}

int first_spike_conv(int n, int c_in, int h, int w, const float *in_times,
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
    int *spiking = (int *)take(base, &offset, sizeof(int) * n_in);
    int *start = (int *)take(base, &offset, sizeof(int) * (time_steps + 1L));
    int *mark = (int *)take(base, &offset, sizeof(int) * n_pos);
    int *touched = (int *)take(base, &offset, sizeof(int) * n_pos);
    int32_t *survivor = (int32_t *)take(base, &offset, sizeof(int32_t) * n_pos);
    uint8_t *blocked_pos = (uint8_t *)take(base, &offset, n_pos);
    uint8_t *blocked_ch = (uint8_t *)take(base, &offset, c_out);
    float *own_times = (float *)take(base, &offset, sizeof(float) * n_out);
    int32_t *fresh = (int32_t *)take(base, &offset, sizeof(int32_t) * n_pos);
    int32_t *visited = (int32_t *)take(base, &offset, sizeof(int32_t) * n_pos);
    const long cap = k_winners;
    const int winners_only = out_win && !out_times && !out_pot && !out_best;
    memset(pot, 0, sizeof(double) * n_out);
    for (long i = 0; i < n_out; ++i) own_times[i] = INFINITY;
    for (long p = 0; p < n_pos; ++p) { mark[p] = -1; survivor[p] = -1; }
    for (int img = 0; img < n; ++img) {
        const float *tin = in_times + (long)img * n_in;
        float *tout = out_times ? out_times + (long)img * n_out : own_times;
        double *pout = out_pot ? out_pot + (long)img * n_out : 0;
        int32_t *win = out_win ? out_win + (long)img * k_winners : 0;
        float *win_t = out_win && out_win_t ? out_win_t + (long)img * k_winners : 0;
        if (out_times) for (long i = 0; i < n_out; ++i) tout[i] = INFINITY;
        if (pout) memset(pout, 0, sizeof(double) * n_out);
        if (win) {
            memset(blocked_pos, 0, n_pos);
            memset(blocked_ch, 0, c_out);
            for (long i = 0; i < cap; ++i) win[i] = -1;
        }
        long n_visited = 0, accepted = 0;
        /* the inputs that spike, in one branch-free pass (most never do), then their
           counting sort by time (stable: flat index order) */
        long n_spikes = 0;
        for (long i = 0; i < n_in; ++i) { spiking[n_spikes] = (int)i; n_spikes += tin[i] < time_steps; }
        for (int t = 0; t <= time_steps; ++t) start[t] = 0;
        for (long s = 0; s < n_spikes; ++s) start[(int)tin[spiking[s]] + 1]++;
        for (int t = 0; t < time_steps; ++t) start[t + 1] += start[t];
        for (int t = time_steps; t > 0; --t) start[t] = start[t - 1];
        start[0] = 0;
        for (long s = 0; s < n_spikes; ++s) events[start[(int)tin[spiking[s]] + 1]++] = spiking[s];
        /* start[t + 1] now holds the end of step t; step t begins at start[t] (start[0] = 0) */
        int begin = 0;
        for (int t = 0; t < time_steps; ++t) {
            const int end = start[t + 1];
            const float now_t = (float)t;
            int n_touched = 0, n_fresh = 0;
            for (int e = begin; e < end; ++e) {
                FOR_EACH_REACHED(events[e], h, w, k, pad, ho, wo, p, row,
                    const double *restrict wrow = weight_t + (long)row * c_out;
                    double *restrict pp = pot + p * c_out;
                    for (int o = 0; o < c_out; ++o) pp[o] += wrow[o];
                    if (mark[p] != t) {
                        if (mark[p] < 0) visited[n_visited++] = (int32_t)p;
                        mark[p] = t;
                        touched[n_touched++] = (int)p;
                    });
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
                    survivor[p] = best; survivor_pot[p] = pp[best];
                    fresh[n_fresh++] = (int32_t)p;
                }
            }
            begin = end;
            if (win && n_fresh)
                accepted = walk_new_survivors(n_fresh, fresh, n_pos, ho, wo, survivor, survivor_pot, now_t, mode,
                                              radius, cap, accepted, blocked_pos, blocked_ch, win, win_t);
            if (winners_only && accepted == cap) break;
        }
        if (out_best) memcpy(out_best + (long)img * n_pos, survivor, sizeof(int32_t) * n_pos);
        for (long v = 0; v < n_visited; ++v) {  /* clear what this image reached */
            const long p = visited[v];
            memset(pot + p * c_out, 0, sizeof(double) * c_out);
            if (!out_times) for (int o = 0; o < c_out; ++o) own_times[p * c_out + o] = INFINITY;
            mark[p] = -1;
            survivor[p] = -1;
        }
    }
    free(owned);
    return 0;
}


/* Which neurons of a layer reach the threshold once every marked input has spiked (the
   last step of the cumulative wave, docs/spec.md 'First-spike convolution'), by gathering.
   The active inputs are scattered once into per-position lists of the weight rows they
   reach (work proportional to the active inputs); then, one block of FIRES_BLOCK channels
   at a time (its weights fit the L1 cache), each position sums its rows in float32 vector
   registers. The decision is the one of the exact float64 sum S of the float32 weights: a
   float32 sum of m non-negative terms lies within g / (1 - g) S' of S (g = (m - 1) 2^-24,
   S' the float32 sum), so only sums that close to the threshold are summed again in
   float64 (rare).
   fired     [n][c_in][h][w] uint8 (non-zero = fired)
   weight_b  [blocks][c_in * k * k][FIRES_BLOCK] float32, non-negative: the weights of
             channels b * FIRES_BLOCK + j, row (c * k + dy) * k + dx; channels past c_out
             are zeros
   out       [n][c_out][ho][wo] uint8, 1 = reaches the threshold; or, with pool_k > 0, its
             max-pooling by non-overlapping pool_k x pool_k windows starting at -pool_pad
             (pooled_h x pooled_w of them; positions past the last window are dropped),
             zero-padded by `border`: [n][c_out][pooled_h + 2 border][pooled_w + 2 border]
   scratch   fires_binary_scratch() bytes */
#define FIRES_BLOCK 32
/* eight floats: GCC and clang lower it to AVX (or SSE pairs) without intrinsics */
typedef float float8 __attribute__((vector_size(32)));

long fires_binary_scratch(int c_in, int h, int w, int k, int ho, int wo)
{
    return 4L * ((long)ho * wo * c_in * k * k + 2L * ho * wo + (long)c_in * h * w);
}

void fires_binary(int n, int c_in, int h, int w, const uint8_t *fired, int c_out, int k, int pad,
                  const float *weight_b, double threshold, int ho, int wo, uint8_t *out, int pool_k, int pool_pad,
                  int pooled_h, int pooled_w, int border, void *scratch)
{
    const long n_in = (long)c_in * h * w, n_pos = (long)ho * wo;
    const int n_rows = c_in * k * k;
    int *lists = (int *)scratch;            /* [n_pos][n_rows] */
    int *counts = lists + n_pos * n_rows;   /* [n_pos] */
    int *cell = counts + n_pos;             /* [n_pos]: output cell of each position, -1 = none */
    int *active = cell + n_pos;             /* [n_in] */
    const int out_w = pool_k ? pooled_w + 2 * border : wo;
    const long out_cells = pool_k ? (long)(pooled_h + 2 * border) * out_w : n_pos;
    for (long p = 0; p < n_pos; ++p) {
        const int py = pool_k ? (int)(p / wo + pool_pad) / pool_k : (int)(p / wo);
        const int px = pool_k ? (int)(p % wo + pool_pad) / pool_k : (int)(p % wo);
        const int shift = pool_k ? border : 0;
        cell[p] = pool_k && (py >= pooled_h || px >= pooled_w) ? -1 : (py + shift) * out_w + px + shift;
    }
    for (int img = 0; img < n; ++img) {
        const uint8_t *f = fired + (long)img * n_in;
        uint8_t *o = out + (long)img * out_cells * c_out;
        memset(o, 0, (size_t)out_cells * c_out);
        long n_active = 0;
        for (long i = 0; i < n_in; ++i) { active[n_active] = (int)i; n_active += f[i] != 0; }
        memset(counts, 0, sizeof(int) * n_pos);
        for (long e = 0; e < n_active; ++e)
            FOR_EACH_REACHED(active[e], h, w, k, pad, ho, wo, p, row, lists[p * n_rows + counts[p]++] = row;);
        for (int o0 = 0, b = 0; o0 < c_out; o0 += FIRES_BLOCK, ++b) {
            const float *block = weight_b + (long)b * n_rows * FIRES_BLOCK;
            const int width = c_out - o0 < FIRES_BLOCK ? c_out - o0 : FIRES_BLOCK;
            for (long p = 0; p < n_pos; ++p) {
                if (cell[p] < 0) continue;
                float8 acc[FIRES_BLOCK / 8] = {{0}};
                const int *rows = lists + p * n_rows;
                const int m = counts[p];
                for (int r = 0; r < m; ++r) {
                    const float *wrow = block + (long)rows[r] * FIRES_BLOCK;
                    for (int j = 0; j < FIRES_BLOCK / 8; ++j) {
                        float8 v;
                        memcpy(&v, wrow + 8 * j, sizeof v);
                        acc[j] += v;
                    }
                }
                float sums[FIRES_BLOCK];
                memcpy(sums, acc, sizeof sums);
                const double g = m > 1 ? (m - 1) * 0x1p-24 : 0.0;
                const double slack = g / (1.0 - g) * (1.0 + 0x1p-20);
                for (int j = 0; j < width; ++j) {
                    const double approx = sums[j], bound = slack * approx;
                    int fires = approx >= threshold;
                    if (approx - bound < threshold && approx + bound >= threshold) {
                        double exact = 0.0;  /* unsure: the float64 sum decides */
                        for (int r = 0; r < m; ++r) exact += block[(long)rows[r] * FIRES_BLOCK + j];
                        fires = exact >= threshold;
                    }
                    o[(long)(o0 + j) * out_cells + cell[p]] |= (uint8_t)fires;
                }
            }
        }
    }
}

/* Training input of the next layer from a layer's first-spike times: min-pooling of
   non-overlapping k x k windows (stride k) starting at -pad, zero padding `border` (never
   fires), then pointwise inhibition: at each position only the earliest channel, ties to
   the lowest, keeps its time.
   times [n][h][w][c] float32 (channel-last), +inf = never
   out   [n][c][ho + 2 border][wo + 2 border] float32 */
void pooled_survivors(int n, int h, int w, int c, const float *times, int k, int pad, int ho, int wo, int border,
                      float *out, float *minima)
{
    const int oh = ho + 2 * border, ow = wo + 2 * border;
    const long n_out = (long)c * oh * ow;
    for (int img = 0; img < n; ++img) {
        const float *t = times + (long)img * h * w * c;
        float *o = out + (long)img * n_out;
        for (long i = 0; i < n_out; ++i) o[i] = INFINITY;
        for (int py = 0; py < ho; ++py) {
            for (int px = 0; px < wo; ++px) {
                for (int ch = 0; ch < c; ++ch) minima[ch] = INFINITY;
                for (int y = py * k - pad; y < py * k - pad + k; ++y) {
                    if (y < 0 || y >= h) continue;
                    for (int x = px * k - pad; x < px * k - pad + k; ++x) {
                        if (x < 0 || x >= w) continue;
                        const float *restrict cell = t + ((long)y * w + x) * c;
                        for (int ch = 0; ch < c; ++ch) minima[ch] = cell[ch] < minima[ch] ? cell[ch] : minima[ch];
                    }
                }
                int best = 0;
                for (int ch = 1; ch < c; ++ch) best = minima[ch] < minima[best] ? ch : best;
                if (minima[best] < INFINITY)
                    o[((long)best * oh + py + border) * ow + px + border] = minima[best];
            }
        }
    }
}
