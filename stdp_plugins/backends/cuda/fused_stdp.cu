// Fused first-spike STDP update (Kheradpisheh et al. 2018, eq. 3) for a whole batch.
//
// One launch applies, to every output channel's kernel, the update of all that channel's
// winners averaged over them, clamps to [weight_min, weight_max] and writes the channel's
// convergence statistic mean(wn * (1 - wn)), wn = (w - weight_min) / (weight_max - weight_min).
// The semantics are those of stdp_plugins.learning.batch_stdp_update (the torch path):
//
//   winner  = (no mask or mask set) and t_post finite
//   synapse i of winner potentiates  <=>  its input lies inside the map and t_pre <= t_post
//   fraction[c, i] = potentiating winners of channel c / winners of channel c
//   delta[c, i]    = f(w) * (s * fraction - m)               (0 for channels without winners)
//   f(w)           = (w - weight_min) * (weight_max - w)  or  1 (additive)
//   s = a+ + a- and m = a- in float32, every operation rounded separately (no FMA).
//
// Grid (C_out, G), blocks of a multiple of 32 threads.
// Phase 1, every block (c, g): scan a strided share of channel c's N * H_out * W_out output
//   positions for winners. A warp finds up to 32 candidates at a time (ballot); it then takes
//   its winners one after the other, its lanes covering the C_in * k * k synapses, and adds 1
//   to counts[c, i] for every potentiating synapse. Wins per channel are counted likewise.
// Phase 2, the last block of channel c to finish (threadfence reduction): read the counts,
//   update and clamp the weights, and reduce the convergence statistic in a fixed order.
//
// Determinism: the only atomics add integers (counts, wins, arrivals), whose sums do not
// depend on order; all floating-point work for a channel is done by one block in a fixed
// order. The result is therefore bitwise reproducible run to run.
//
// workspace (int32, zero on entry): counts [C_out, C_in*k*k] | wins [C_out] | arrivals [C_out].
// Tensors are contiguous; winner_mask is read only when use_mask != 0 and learning_rates
// ([s, m], float32 on the device) only when use_learning_rates != 0.

#define FULL_WARP 0xffffffffu

extern "C" __global__ void fused_stdp_update(
    float* __restrict__ weights,                  // [C_out, C_in, k, k], updated in place
    float* __restrict__ convergence,              // [C_out], written
    int* __restrict__ workspace,                  // see above
    const float* __restrict__ pre_times,          // [N, C_in, H, W]
    const float* __restrict__ post_times,         // [N, C_out, H_out, W_out]
    const unsigned char* __restrict__ winner_mask,  // [N, C_out, H_out, W_out], 0 or 1
    const float* __restrict__ learning_rates,     // [2]: s, m
    const int use_mask,
    const int use_learning_rates,
    const float rate_sum,                         // s = a+ + a- (rounded once to float32)
    const float lr_minus,
    const float weight_min,
    const float weight_max,
    const int multiplicative,
    const int batch,
    const int in_channels,
    const int height,
    const int width,
    const int out_height,
    const int out_width,
    const int kernel_size,
    const int stride,
    const int padding)
{
    const int channel = blockIdx.x;
    const int out_channels = gridDim.x;
    const int lane = threadIdx.x & 31;
    const int kernel_area = kernel_size * kernel_size;
    const int synapses = in_channels * kernel_area;
    const int plane = out_height * out_width;
    const long long positions = (long long)batch * plane;
    const long long input_plane = (long long)height * width;
    const float infinity = __int_as_float(0x7f800000);

    int* counts = workspace + (long long)channel * synapses;
    int* wins = workspace + (long long)out_channels * synapses;
    int* arrivals = wins + out_channels;

    // Phase 1: count potentiating winners per synapse. The loop bound and the ballot are
    // uniform across a warp: `base` is the position of the warp's lane 0.
    for (long long base = (long long)blockIdx.y * blockDim.x + (threadIdx.x - lane);
         base < positions;
         base += (long long)gridDim.y * blockDim.x) {
        const long long q = base + lane;
        int sample = 0;
        int position = 0;
        float t_post = infinity;
        if (q < positions) {
            sample = (int)(q / plane);
            position = (int)(q - (long long)sample * plane);
            const long long offset = ((long long)sample * out_channels + channel) * plane + position;
            if (!use_mask || winner_mask[offset] != 0) {
                t_post = post_times[offset];
            }
        }
        unsigned int pending = __ballot_sync(FULL_WARP, fabsf(t_post) < infinity);
        if (lane == 0 && pending != 0u) {
            atomicAdd(wins + channel, __popc(pending));
        }
        while (pending != 0u) {
            const int source = __ffs(pending) - 1;
            pending &= pending - 1u;
            const int winner_sample = __shfl_sync(FULL_WARP, sample, source);
            const int winner_position = __shfl_sync(FULL_WARP, position, source);
            const float winner_time = __shfl_sync(FULL_WARP, t_post, source);
            const int row0 = (winner_position / out_width) * stride - padding;
            const int col0 = (winner_position % out_width) * stride - padding;
            const float* field = pre_times + (long long)winner_sample * in_channels * input_plane;
            for (int i = lane; i < synapses; i += 32) {
                const int in_channel = i / kernel_area;
                const int within = i - in_channel * kernel_area;
                const int row = row0 + within / kernel_size;
                const int col = col0 + within % kernel_size;
                if (row >= 0 && row < height && col >= 0 && col < width &&
                    field[in_channel * input_plane + (long long)row * width + col] <= winner_time) {
                    atomicAdd(counts + i, 1);
                }
            }
        }
    }

    // Phase 2: the last block of this channel to arrive applies the update.
    __shared__ int is_last;
    __shared__ float warp_sums[32];
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        is_last = atomicAdd(arrivals + channel, 1) == (int)gridDim.y - 1;
    }
    __syncthreads();
    if (!is_last) {
        return;
    }
    __threadfence();

    const int channel_wins = __ldcg(wins + channel);
    const float s = use_learning_rates ? learning_rates[0] : rate_sum;
    const float m = use_learning_rates ? learning_rates[1] : lr_minus;
    const float span = weight_max - weight_min;
    float* kernel = weights + (long long)channel * synapses;
    float spread = 0.0f;
    for (int i = threadIdx.x; i < synapses; i += blockDim.x) {
        float w = kernel[i];
        if (channel_wins > 0) {
            const float fraction = __fdiv_rn((float)__ldcg(counts + i), (float)channel_wins);
            const float factor = multiplicative ? __fmul_rn(__fsub_rn(w, weight_min), __fsub_rn(weight_max, w)) : 1.0f;
            w = __fadd_rn(w, __fmul_rn(factor, __fsub_rn(__fmul_rn(s, fraction), m)));
        }
        w = fminf(fmaxf(w, weight_min), weight_max);
        kernel[i] = w;
        const float normalised = (w - weight_min) / span;
        spread += normalised * (1.0f - normalised);
    }

    // Fixed-order block reduction: warp shuffles, then warp 0 over the per-warp sums.
    for (int offset = 16; offset > 0; offset >>= 1) {
        spread += __shfl_down_sync(FULL_WARP, spread, offset);
    }
    if (lane == 0) {
        warp_sums[threadIdx.x >> 5] = spread;
    }
    __syncthreads();
    if (threadIdx.x < 32) {
        spread = lane < (int)(blockDim.x >> 5) ? warp_sums[lane] : 0.0f;
        for (int offset = 16; offset > 0; offset >>= 1) {
            spread += __shfl_down_sync(FULL_WARP, spread, offset);
        }
        if (lane == 0) {
            convergence[channel] = spread / (float)synapses;
        }
    }
}
