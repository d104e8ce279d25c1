/* Native CPU learning operations: first spikes of a recorded window, the greedy
   winner-take-all walk and the batch STDP step (docs/spec.md). Built without FMA
   contraction so that the STDP step rounds like torch's separate multiply and add. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stdp_native.h"

/* What an accepted winner at position p of channel ch excludes: mode bit 1 (global) its
   channel, bit 2 (local) every position within Chebyshev distance `radius`. */
static void block_winner(long p, int ch, int h, int w, int mode, int radius, uint8_t *blocked_pos,
                         uint8_t *blocked_ch)
{
    if (mode & 1) blocked_ch[ch] = 1;
    if (mode & 2) {
        const int by = (int)(p / w), bx = (int)(p % w);
        for (int y = by - radius; y <= by + radius; ++y) {
            if (y < 0 || y >= h) continue;
            for (int x = bx - radius; x <= bx + radius; ++x)
                if (x >= 0 && x < w) blocked_pos[(long)y * w + x] = 1;
        }
    }
}

void walk_survivors(long n_pos, int ho, int wo, int c_out, const int32_t *survivor, const float *survivor_t,
                    const double *survivor_pot, int mode, int radius, int k, uint8_t *blocked_pos,
                    uint8_t *blocked_ch, int32_t *out_flat, float *out_t)
{
    const long cap = k > 0 ? k : n_pos;
    memset(blocked_pos, 0, n_pos);
    memset(blocked_ch, 0, c_out);
    for (long i = 0; i < cap; ++i) out_flat[i] = -1;
    for (long i = 0; i < cap && i < n_pos; ++i) {
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
        out_flat[i] = (int32_t)best_flat;
        if (out_t) out_t[i] = survivor_t[best];
        blocked_pos[best] = 1; /* a position's only survivor is now taken */
        block_winner(best, survivor[best], ho, wo, mode, radius, blocked_pos, blocked_ch);
    }
}

long walk_new_survivors(long n_new, const int32_t *new_pos, long n_pos, int ho, int wo, const int32_t *survivor,
                        const double *survivor_pot, float now_t, int mode, int radius, long cap, long accepted,
                        uint8_t *blocked_pos, uint8_t *blocked_ch, int32_t *out_flat, float *out_t)
{
    while (accepted < cap) {
        long best = -1, best_flat = 0;
        for (long j = 0; j < n_new; ++j) {
            const long p = new_pos[j];
            const int c = survivor[p];
            if (blocked_pos[p] || blocked_ch[c]) continue;
            const long flat = (long)c * n_pos + p;
            if (best < 0 || survivor_pot[p] > survivor_pot[best]
                    || (survivor_pot[p] == survivor_pot[best] && flat < best_flat)) {
                best = p; best_flat = flat;
            }
        }
        if (best < 0) break;
        out_flat[accepted] = (int32_t)best_flat;
        if (out_t) out_t[accepted] = now_t;
        ++accepted;
        blocked_pos[best] = 1;
        block_winner(best, survivor[best], ho, wo, mode, radius, blocked_pos, blocked_ch);
    }
    return accepted;
}

/* First spike of m neurons over t_steps steps: spikes[t * stride + i] (non-zero fires),
   i < m, so that a range of a [t_steps][stride] array can be passed. out_time[i] is the
   first step at which neuron i fires (INFINITY if never). With values laid out like
   spikes (or NULL), out_value[i] is values at that step, or with `cumulative` the
   sum of values up to and including it, accumulated in double and rounded once, like
   torch's CPU cumsum; 0 for silent neurons. Neurons are processed in blocks so that each
   time step's row of a block stays in cache. */
#define FIRST_SPIKE_BLOCK 2048

void first_spike(long t_steps, long m, long stride, const uint8_t *spikes, const float *values, int cumulative,
                 float *out_time, float *out_value)
{
    double acc[FIRST_SPIKE_BLOCK];
    for (long lo = 0; lo < m; lo += FIRST_SPIKE_BLOCK) {
        const long n = m - lo < FIRST_SPIKE_BLOCK ? m - lo : FIRST_SPIKE_BLOCK;
        float *restrict tout = out_time + lo;
        for (long i = 0; i < n; ++i) tout[i] = INFINITY;
        for (long t = t_steps - 1; t >= 0; --t) {
            const uint8_t *restrict row = spikes + t * stride + lo;
            const float now = (float)t;
            for (long i = 0; i < n; ++i) tout[i] = row[i] ? now : tout[i];
        }
        if (!values) continue;
        float *restrict vout = out_value + lo;
        if (cumulative) {
            for (long i = 0; i < n; ++i) acc[i] = 0.0;
            for (long t = 0; t < t_steps; ++t) {
                const float *restrict row = values + t * stride + lo;
                const float now = (float)t;
                for (long i = 0; i < n; ++i) acc[i] += tout[i] >= now ? (double)row[i] : 0.0;
            }
            for (long i = 0; i < n; ++i) vout[i] = tout[i] < INFINITY ? (float)acc[i] : 0.0f;
        } else {
            for (long i = 0; i < n; ++i) {
                const float t = tout[i];
                vout[i] = t < INFINITY ? values[(long)t * stride + lo + i] : 0.0f;
            }
        }
    }
}

/* Candidates of the general walk, ordered by earliest time, highest potential, lowest
   flat index. */
typedef struct {
    float t;
    double p;
    int32_t flat;
} candidate;

static int comes_first(const candidate *a, const candidate *b)
{
    if (a->t != b->t) return a->t < b->t;
    if (a->p != b->p) return a->p > b->p;
    return a->flat < b->flat;
}

static void sift_down(candidate *heap, long size, long i)
{
    for (;;) {
        long first = i;
        const long left = 2 * i + 1, right = left + 1;
        if (left < size && comes_first(&heap[left], &heap[first])) first = left;
        if (right < size && comes_first(&heap[right], &heap[first])) first = right;
        if (first == i) return;
        const candidate swap = heap[i];
        heap[i] = heap[first];
        heap[first] = swap;
        i = first;
    }
}

/* The channel surviving pointwise inhibition at position p of one image (times and pot
   [c][n_pos]): the earliest spike, ties to the highest potential (when pot is given),
   then the lowest channel; -1 when none fired. */
static int position_survivor(const float *ti, const double *pi, int c, long n_pos, long p)
{
    int best = -1;
    for (int ch = 0; ch < c; ++ch) {
        const long i = (long)ch * n_pos + p;
        if (!(ti[i] < INFINITY)) continue;
        const long b = (long)best * n_pos + p;
        if (best < 0 || ti[i] < ti[b] || (ti[i] == ti[b] && pi && pi[i] > pi[b])) best = ch;
    }
    return best;
}

/* The greedy winner-take-all rule of a batch: times [n][c][h][w] (INFINITY = silent),
   pot the same layout (double, or NULL = no ties by potential). With `pointwise`, only
   each position's survivor (earliest, highest potential, lowest channel) is a candidate
   and the walk is walk_survivors; otherwise every spiking neuron is, taken from a heap.
   A candidate is accepted unless an accepted winner blocks it (mode bit 1: its channel;
   bit 2: every channel within Chebyshev distance `radius`); at most k winners per image
   (k <= 0: no cap). out_mask [n][c][h][w] receives 1 for every winner and must be zero on
   entry. Returns 0, or -1 when out of memory. */
int select_winners(int n, int c, int h, int w, const float *times, const double *pot, int pointwise, int mode,
                   int radius, int k, uint8_t *out_mask)
{
    const long n_pos = (long)h * w, per_image = n_pos * c;
    candidate *heap = (candidate *)malloc(sizeof(candidate) * (pointwise ? 1 : per_image));
    uint8_t *blocked_pos = (uint8_t *)malloc(n_pos);
    uint8_t *blocked_ch = (uint8_t *)malloc(c);
    int32_t *survivor = (int32_t *)malloc(sizeof(int32_t) * n_pos);
    int32_t *flat_out = (int32_t *)malloc(sizeof(int32_t) * (k > n_pos ? k : n_pos));
    float *survivor_t = (float *)malloc(sizeof(float) * n_pos);
    double *survivor_pot = (double *)malloc(sizeof(double) * n_pos);
    int status = 0;
    if (!heap || !blocked_pos || !blocked_ch || !survivor || !flat_out || !survivor_t || !survivor_pot) {
        status = -1;
        n = 0;
    }
    for (int img = 0; img < n; ++img) {
        const float *ti = times + img * per_image;
        const double *pi = pot ? pot + img * per_image : 0;
        uint8_t *mi = out_mask + img * per_image;
        if (!pointwise && mode == 2 && radius == 0 && k <= 0) {
            /* local blocking of radius 0 without a cap accepts exactly the first candidate
               of every position, its pointwise survivor */
            for (long p = 0; p < n_pos; ++p) {
                const int best = position_survivor(ti, pi, c, n_pos, p);
                if (best >= 0) mi[(long)best * n_pos + p] = 1;
            }
            continue;
        }
        if (pointwise) {
            for (long p = 0; p < n_pos; ++p) {
                const int best = position_survivor(ti, pi, c, n_pos, p);
                survivor[p] = best;
                survivor_t[p] = best < 0 ? INFINITY : ti[(long)best * n_pos + p];
                survivor_pot[p] = best < 0 || !pi ? 0.0 : pi[(long)best * n_pos + p];
            }
            walk_survivors(n_pos, h, w, c, survivor, survivor_t, survivor_pot, mode, radius, k, blocked_pos,
                           blocked_ch, flat_out, 0);
            const long cap = k > 0 ? k : n_pos;
            for (long i = 0; i < cap && flat_out[i] >= 0; ++i) mi[flat_out[i]] = 1;
            continue;
        }
        long size = 0;
        for (long i = 0; i < per_image; ++i) {
            if (!(ti[i] < INFINITY)) continue;
            heap[size].t = ti[i];
            heap[size].p = pi ? pi[i] : 0.0;
            heap[size].flat = (int32_t)i;
            ++size;
        }
        for (long i = size / 2 - 1; i >= 0; --i) sift_down(heap, size, i);
        memset(blocked_pos, 0, n_pos);
        memset(blocked_ch, 0, c);
        long accepted = 0;
        while (size > 0 && (k <= 0 || accepted < k)) {
            const candidate top = heap[0];
            heap[0] = heap[--size];
            sift_down(heap, size, 0);
            const int ch = top.flat / n_pos;
            const long p = top.flat % n_pos;
            if (((mode & 1) && blocked_ch[ch]) || ((mode & 2) && blocked_pos[p])) continue;
            mi[top.flat] = 1;
            ++accepted;
            block_winner(p, ch, h, w, mode, radius, blocked_pos, blocked_ch);
        }
    }
    free(heap);
    free(blocked_pos);
    free(blocked_ch);
    free(survivor);
    free(flat_out);
    free(survivor_t);
    free(survivor_pot);
    return status;
}

/* The batch STDP step of docs/spec.md for float32 weights [c_out][c_in][k][k]. Winners
   (sample, channel, y, x) with spike times t_post come grouped: per_sample != 0 groups
   consecutive winners of the same (sample, channel), the sequential reduction (winners
   sorted by sample, then channel); per_sample == 0 groups those of the same channel, the
   mean reduction (winners sorted by channel). In order, each group's step is applied and
   clamped:
       frac = potentiating winners / winners of the group       (per synapse)
       w   <- clamp(w + f(w) * (s * frac - m), lo, hi),  f(w) = (w - lo) * (hi - w) or 1,
   with s = a+ + a- and m = a-, and the float32 roundings of torch's separate operations.
   A synapse potentiates when its input fired no later than the winner
   (pre_times [n][c_in][h][w] <= t_post; INFINITY = never); padding depresses.
   count: scratch of c_in * k * k ints. */
void stdp_groups(int n_win, const int64_t *sample, const int64_t *channel, const int64_t *wy, const int64_t *wx,
                 const float *t_post, const float *pre_times, int c_in, int h, int w, int k, int stride, int pad,
                 float *weight, float s, float m, int additive, float lo, float hi, int per_sample, int *count)
{
    const int kk = c_in * k * k;
    int g = 0;
    while (g < n_win) {
        int e = g;
        while (e < n_win && channel[e] == channel[g] && (!per_sample || sample[e] == sample[g])) ++e;
        memset(count, 0, sizeof(int) * kk);
        for (int i = g; i < e; ++i) {
            const float *tin = pre_times + sample[i] * (long)c_in * h * w;
            for (int ci = 0; ci < c_in; ++ci)
                for (int dy = 0; dy < k; ++dy) {
                    const long iy = wy[i] * stride - pad + dy;
                    if (iy < 0 || iy >= h) continue;
                    for (int dx = 0; dx < k; ++dx) {
                        const long ix = wx[i] * stride - pad + dx;
                        if (ix < 0 || ix >= w) continue;
                        count[(ci * k + dy) * k + dx] += tin[((long)ci * h + iy) * w + ix] <= t_post[i];
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

/* The paper's fire-once, non-leaky IF neurons over a window (docs/spec.md, 'The paper's
   neuron'): for each of m neurons, step after step, v += currents[t], a spike when
   v >= threshold and the neuron has not fired, then fired |= spike. currents, spikes and
   v_seq (or NULL) are laid out [t_steps][stride], neuron i < m at offset i; v and fired
   [m] hold the state and are updated. Float32 additions in step order, like torch's. */
void fire_once(long t_steps, long m, long stride, const float *currents, float threshold, float *v,
               uint8_t *fired, float *spikes, float *v_seq)
{
    for (long t = 0; t < t_steps; ++t) {
        const float *restrict row = currents + t * stride;
        float *restrict out = spikes + t * stride;
        float *restrict vs = v_seq ? v_seq + t * stride : 0;
        for (long i = 0; i < m; ++i) {
            const float vi = v[i] + row[i];
            const uint8_t spike = vi >= threshold && !fired[i];
            v[i] = vi;
            out[i] = spike ? 1.0f : 0.0f;
            fired[i] |= spike;
        }
        if (vs) memcpy(vs, v, sizeof(float) * m);
    }
}

/* Each unit's first spike of a window: spikes laid out [t_steps][stride] (non-zero = a
   spike), out likewise (1.0 at the first spike of a unit that had not fired, else 0.0);
   fired [m] is the state and is updated. */
void first_spike_only(long t_steps, long m, long stride, const float *spikes, uint8_t *fired, float *out)
{
    for (long t = 0; t < t_steps; ++t) {
        const float *restrict row = spikes + t * stride;
        float *restrict o = out + t * stride;
        for (long i = 0; i < m; ++i) {
            const uint8_t spike = row[i] != 0.0f && !fired[i];
            o[i] = spike ? 1.0f : 0.0f;
            fired[i] |= row[i] != 0.0f;
        }
    }
}

/* uint8 spike codes to float32 times: 255 becomes +inf, any other code its value. Two
   passes, because GCC vectorises each of them but not the select of the codes. */
void codes_to_times(long n, const uint8_t *restrict codes, float *restrict out)
{
    for (long i = 0; i < n; ++i) out[i] = (float)codes[i];
    for (long i = 0; i < n; ++i) out[i] = out[i] == 255.0f ? INFINITY : out[i];
}

/* Linear read-out: one-vs-rest L2-regularised squared-hinge SVMs on binary features,
   liblinear's dual coordinate descent with shrinking (Hsieh et al. 2008; the problem of
   sklearn.svm.LinearSVC(dual=True) with its intercept as a constant feature 1), one class
   after another for classes [lo, hi). Row i holds the features indices[indptr[i] ..
   indptr[i + 1]) (all of value 1; uint16 indices16 when d <= 65536, else int32 indices32,
   the other NULL: half the memory for the usual widths) and class label[i]; class c's problem labels its rows
   +1 and the others -1 (binary problems: pass lo = 1, hi = 2). w [n_classes][d + 1]
   receives the weights, the last entry the intercept; iterations[c] the passes made
   (max_iter when it did not converge to eps). Returns 0, or -1 when out of memory. */
/* sum of w over one row's features, in four partial sums so that the gathers overlap
   instead of waiting on one chain; and w += step at each of them */
#define ROW_KERNELS(NAME, INDEX)                                                          \
    static double dot_##NAME(const double *w, const INDEX *row, long m)                  \
    {                                                                                    \
        double part[4] = {0.0, 0.0, 0.0, 0.0};                                            \
        long e = 0;                                                                      \
        for (; e + 4 <= m; e += 4) {                                                     \
            part[0] += w[row[e]];                                                        \
            part[1] += w[row[e + 1]];                                                    \
            part[2] += w[row[e + 2]];                                                    \
            part[3] += w[row[e + 3]];                                                    \
        }                                                                                \
        for (; e < m; ++e) part[0] += w[row[e]];                                         \
        return (part[0] + part[1]) + (part[2] + part[3]);                                \
    }                                                                                    \
    static void add_##NAME(double *w, const INDEX *row, long m, double step)             \
    {                                                                                    \
        for (long e = 0; e < m; ++e) w[row[e]] += step;                                  \
    }
ROW_KERNELS(u16, uint16_t)
ROW_KERNELS(i32, int32_t)

int svm_dual_binary(int n, int d, const int64_t *indptr, const uint16_t *indices16, const int32_t *indices32,
                    const int32_t *label, int lo, int hi, double c, double eps, int max_iter, uint64_t seed,
                    double *w, int32_t *iterations)
{
    double *alpha = (double *)malloc(sizeof(double) * n);
    double *qd = (double *)malloc(sizeof(double) * n);
    int32_t *order = (int32_t *)malloc(sizeof(int32_t) * n);
    if (!alpha || !qd || !order) {
        free(alpha); free(qd); free(order);
        return -1;
    }
    const double diag = 0.5 / c;
    for (int i = 0; i < n; ++i) qd[i] = diag + (double)(indptr[i + 1] - indptr[i]) + 1.0;
    for (int cls = lo; cls < hi; ++cls) {
        double *wc = w + (long)cls * (d + 1);
        uint64_t state = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)cls + 1;
        memset(wc, 0, sizeof(double) * (d + 1));
        memset(alpha, 0, sizeof(double) * n);
        for (int i = 0; i < n; ++i) order[i] = i;
        int active = n, iter = 0;
        double pg_max_old = INFINITY, pg_min_old = -INFINITY;
        while (iter < max_iter) {
            double pg_max = -INFINITY, pg_min = INFINITY;
            for (int s = 0; s < active; ++s) {  /* shuffle the active rows */
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                const int j = s + (int)(state % (uint64_t)(active - s));
                const int32_t swap = order[s]; order[s] = order[j]; order[j] = swap;
            }
            for (int s = 0; s < active; ++s) {
                const int i = order[s];
                const double yi = label[i] == cls ? 1.0 : -1.0;
                const long m = indptr[i + 1] - indptr[i];
                const double dot = wc[d] + (indices16 ? dot_u16(wc, indices16 + indptr[i], m)
                                                      : dot_i32(wc, indices32 + indptr[i], m));
                const double g = yi * dot - 1.0 + alpha[i] * diag;
                double pg = g;
                if (alpha[i] == 0.0) {
                    if (g > pg_max_old) {  /* shrink: bound at 0 and likely to stay there */
                        --active;
                        const int32_t swap = order[s]; order[s] = order[active]; order[active] = swap;
                        --s;
                        continue;
                    }
                    if (g > 0.0) pg = 0.0;
                }
                pg_max = pg > pg_max ? pg : pg_max;
                pg_min = pg < pg_min ? pg : pg_min;
                if (fabs(pg) > 1e-12) {
                    const double old = alpha[i];
                    alpha[i] = fmax(old - g / qd[i], 0.0);
                    const double step = (alpha[i] - old) * yi;
                    if (indices16) add_u16(wc, indices16 + indptr[i], m, step);
                    else add_i32(wc, indices32 + indptr[i], m, step);
                    wc[d] += step;
                }
            }
            ++iter;
            if (pg_max - pg_min <= eps) {
                if (active == n) break;
                active = n;  /* converged on the active rows: check all of them once more */
                pg_max_old = INFINITY;
                pg_min_old = -INFINITY;
                continue;
            }
            pg_max_old = pg_max > 0.0 ? pg_max : INFINITY;
            pg_min_old = pg_min < 0.0 ? pg_min : -INFINITY;
        }
        iterations[cls] = iter;
    }
    free(alpha); free(qd); free(order);
    return 0;
}
