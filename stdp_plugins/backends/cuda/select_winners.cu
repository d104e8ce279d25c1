// The greedy winner-take-all walk of docs/spec.md ('Winner-take-all'), one image per block.
//
// Candidates are the neurons that fired (t finite), or with `pointwise` only each
// position's survivor of pointwise inhibition (earliest, then highest potential, then
// lowest channel). They are taken in the order earliest time, highest potential, lowest
// flat index c * H * W + p; a candidate is accepted unless an accepted winner blocks it:
// mode bit 1 blocks the winner's channel (GLOBAL), bit 2 every position within Chebyshev
// distance `radius` (LOCAL), both for BOTH; with `pointwise` the winner's position, whose
// only candidate it was, is taken too. At most k winners per image (k <= 0: no cap). This
// is stdp_plugins.learning.select_winners and the C library's select_winners.
//
// Each step of the walk is an argmin over the image's live candidates: every thread finds
// the first of its strided share, a tree reduction in shared memory finds the image's
// first, and the threads mark what it blocks. The order is a strict total order (the flat
// index breaks every tie), so the result does not depend on the block size.
//
// Grid (N), blocks of a power of two <= WALK_THREADS threads. workspace: int32 per image,
// [N, H*W + C + H*W]: blocked positions | blocked channels | survivor channel of each
// position (pointwise only); no initial value needed. winner_mask: [N, C, H, W] uint8,
// zero on entry; 1 is written for every winner. potentials is read only when
// use_potentials != 0 (otherwise every potential is 0).

#define WALK_THREADS 256

struct Candidate {
    float time;
    double potential;
    int flat;  // -1: none
};

__device__ __forceinline__ bool comes_first(const Candidate& a, const Candidate& b)
{
    if (a.flat < 0) return false;
    if (b.flat < 0) return true;
    if (a.time != b.time) return a.time < b.time;
    if (a.potential != b.potential) return a.potential > b.potential;
    return a.flat < b.flat;
}

extern "C" __global__ void select_winners_walk(
    unsigned char* __restrict__ winner_mask,   // [N, C, H, W], zero on entry
    int* __restrict__ workspace,               // see above
    const float* __restrict__ times,           // [N, C, H, W], inf = silent
    const double* __restrict__ potentials,     // [N, C, H, W]
    const int use_potentials,
    const int pointwise,
    const int mode,
    const int radius,
    const int k_winners,
    const int channels,
    const int height,
    const int width)
{
    __shared__ float best_time[WALK_THREADS];
    __shared__ double best_potential[WALK_THREADS];
    __shared__ int best_flat[WALK_THREADS];

    const int image = blockIdx.x;
    const int tid = threadIdx.x;
    const int positions = height * width;
    const long long per_image = (long long)channels * positions;
    const float infinity = __int_as_float(0x7f800000);
    const float* t = times + image * per_image;
    const double* pot = potentials + image * per_image;
    unsigned char* mask = winner_mask + image * per_image;
    int* blocked_position = workspace + (long long)image * (2 * positions + channels);
    int* blocked_channel = blocked_position + positions;
    int* survivor = blocked_channel + channels;

    for (int p = tid; p < positions; p += blockDim.x) {
        blocked_position[p] = 0;
        if (pointwise) {  // pointwise inhibition: the position's first channel
            Candidate best = {infinity, 0.0, -1};
            for (int c = 0; c < channels; ++c) {
                const int flat = c * positions + p;
                const Candidate here = {t[flat], use_potentials ? pot[flat] : 0.0, flat};
                if (fabsf(here.time) < infinity && comes_first(here, best)) best = here;
            }
            survivor[p] = best.flat < 0 ? -1 : best.flat / positions;
        }
    }
    for (int c = tid; c < channels; c += blockDim.x) {
        blocked_channel[c] = 0;
    }
    __syncthreads();

    const int candidates = pointwise ? positions : (int)per_image;
    for (int accepted = 0; k_winners <= 0 || accepted < k_winners; ++accepted) {
        Candidate best = {infinity, 0.0, -1};
        for (int i = tid; i < candidates; i += blockDim.x) {
            const int c = pointwise ? survivor[i] : i / positions;
            const int p = pointwise ? i : i - c * positions;
            if (c < 0 || ((mode & 1) && blocked_channel[c]) || ((pointwise || (mode & 2)) && blocked_position[p])) {
                continue;
            }
            const int flat = c * positions + p;
            const Candidate here = {t[flat], use_potentials ? pot[flat] : 0.0, flat};
            if (fabsf(here.time) < infinity && comes_first(here, best)) best = here;
        }
        best_time[tid] = best.time;
        best_potential[tid] = best.potential;
        best_flat[tid] = best.flat;
        __syncthreads();
        for (int half = blockDim.x / 2; half > 0; half >>= 1) {
            if (tid < half) {
                const Candidate mine = {best_time[tid], best_potential[tid], best_flat[tid]};
                const Candidate other = {best_time[tid + half], best_potential[tid + half], best_flat[tid + half]};
                if (comes_first(other, mine)) {
                    best_time[tid] = other.time;
                    best_potential[tid] = other.potential;
                    best_flat[tid] = other.flat;
                }
            }
            __syncthreads();
        }
        const int winner = best_flat[0];
        if (winner < 0) {
            break;  // uniform: every thread read the same winner
        }
        const int c = winner / positions;
        const int p = winner - c * positions;
        if (tid == 0) {
            mask[winner] = 1;
            blocked_channel[c] |= mode & 1;
            blocked_position[p] = 1;  // taken (the winner's own position)
        }
        if (mode & 2) {
            const int side = 2 * radius + 1;
            const int y0 = p / width - radius;
            const int x0 = p % width - radius;
            for (int j = tid; j < side * side; j += blockDim.x) {
                const int y = y0 + j / side;
                const int x = x0 + j % side;
                if (y >= 0 && y < height && x >= 0 && x < width) blocked_position[y * width + x] = 1;
            }
        }
        __syncthreads();
    }
}
