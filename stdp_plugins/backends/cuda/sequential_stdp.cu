// Sequential first-spike STDP update of a batch (docs/spec.md, 'Sequential reduction').
//
// The samples' steps are applied one after another, each averaged over that sample's
// winners of a channel and clamped before the next, exactly like
// stdp_plugins.learning.sequential_stdp_update_ (the torch path) and the C library's
// stdp_groups:
//
//   winner  = (no mask or mask set) and t_post finite
//   synapse i of winner potentiates  <=>  its input lies inside the map and t_pre <= t_post
//   frac    = potentiating winners of (sample, channel) / winners of (sample, channel)
//   w      <- clamp(w + f(w) * (s * frac - m), lo, hi),  f(w) = (w - lo) * (hi - w) or 1,
//   s = a+ + a- and m = a- (float32), every operation rounded separately (no FMA).
//
// A winner changes only its own channel's kernel, so channels are independent: one block
// per output channel walks the samples in order. For each sample the block lists the
// channel's winners in shared memory (a chunk of at most LIST_CAPACITY positions at a
// time), then every thread counts, for its own synapses, how many listed winners
// potentiate them; after the sample's last chunk it applies the step to those synapses.
// A thread always owns the same synapses, so counts need no atomics; the only atomic
// fills the list, whose order does not change the integer counts. The result is therefore
// deterministic and equal, bit for bit, to the torch path.
//
// Grid (C_out), any block size. workspace: int32 [C_out, C_in*k*k], zero on entry and on
// exit. Tensors are contiguous; winner_mask is read only when use_mask != 0 and
// learning_rates ([s, m], float32 on the device) only when use_learning_rates != 0.

#define LIST_CAPACITY 1024

extern "C" __global__ void sequential_stdp_update(
    float* __restrict__ weights,                    // [C_out, C_in, k, k], updated in place
    int* __restrict__ workspace,                    // see above
    const float* __restrict__ pre_times,            // [N, C_in, H, W]
    const float* __restrict__ post_times,           // [N, C_out, H_out, W_out]
    const unsigned char* __restrict__ winner_mask,  // [N, C_out, H_out, W_out], 0 or 1
    const float* __restrict__ learning_rates,       // [2]: s, m
    const int use_mask,
    const int use_learning_rates,
    const float rate_sum,                           // s = a+ + a- (rounded once to float32)
    const float lr_minus,                           // m = a-
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
    __shared__ int listed;
    __shared__ int list_position[LIST_CAPACITY];
    __shared__ float list_time[LIST_CAPACITY];

    const int channel = blockIdx.x;
    const int out_channels = gridDim.x;
    const int kernel_area = kernel_size * kernel_size;
    const int synapses = in_channels * kernel_area;
    const int plane = out_height * out_width;
    const long long input_plane = (long long)height * width;
    const float infinity = __int_as_float(0x7f800000);
    const float s = use_learning_rates ? learning_rates[0] : rate_sum;
    const float m = use_learning_rates ? learning_rates[1] : lr_minus;
    float* kernel = weights + (long long)channel * synapses;
    int* counts = workspace + (long long)channel * synapses;

    for (int sample = 0; sample < batch; ++sample) {
        const long long base = ((long long)sample * out_channels + channel) * plane;
        const float* field = pre_times + (long long)sample * in_channels * input_plane;
        int wins = 0;  // the same in every thread
        for (int chunk = 0; chunk < plane; chunk += LIST_CAPACITY) {
            if (threadIdx.x == 0) {
                listed = 0;
            }
            __syncthreads();
            const int end = chunk + LIST_CAPACITY < plane ? chunk + LIST_CAPACITY : plane;
            for (int position = chunk + (int)threadIdx.x; position < end; position += blockDim.x) {
                const float t_post = post_times[base + position];
                if ((!use_mask || winner_mask[base + position] != 0) && fabsf(t_post) < infinity) {
                    const int slot = atomicAdd(&listed, 1);
                    list_position[slot] = position;
                    list_time[slot] = t_post;
                }
            }
            __syncthreads();
            const int found = listed;
            wins += found;
            for (int i = threadIdx.x; i < synapses; i += blockDim.x) {
                const int in_channel = i / kernel_area;
                const int within = i - in_channel * kernel_area;
                const int dy = within / kernel_size;
                const int dx = within - dy * kernel_size;
                const float* input = field + in_channel * input_plane;
                int count = 0;
                for (int j = 0; j < found; ++j) {
                    const int position = list_position[j];
                    const int row = (position / out_width) * stride - padding + dy;
                    const int col = (position % out_width) * stride - padding + dx;
                    count += row >= 0 && row < height && col >= 0 && col < width &&
                             input[(long long)row * width + col] <= list_time[j];
                }
                counts[i] += count;
            }
            __syncthreads();  // the list is refilled by the next chunk
        }
        if (wins == 0) {
            continue;
        }
        for (int i = threadIdx.x; i < synapses; i += blockDim.x) {
            const float w = kernel[i];
            const float fraction = __fdiv_rn((float)counts[i], (float)wins);
            const float rate = __fsub_rn(__fmul_rn(s, fraction), m);
            const float factor = multiplicative ? __fmul_rn(__fsub_rn(w, weight_min), __fsub_rn(weight_max, w)) : 1.0f;
            const float v = __fadd_rn(w, __fmul_rn(factor, rate));
            kernel[i] = v < weight_min ? weight_min : (v > weight_max ? weight_max : v);
            counts[i] = 0;
        }
    }
}
