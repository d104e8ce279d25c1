// First-spike convolution of a layer of fire-once non-leaky IF neurons (docs/spec.md,
// 'First-spike convolution'): the first step at which each neuron's potential, the sum of
// the weights of the inputs that have spiked, reaches the threshold, and that potential.
//
// Event-driven per neuron rather than a dense convolution over time: one thread per
// output neuron (n, c, y, x) reads its receptive field once, adds each weight (in float64)
// to the bucket of the step at which its input arrives (ceil(t_in), inputs after step
// steps - 1 never arrive), then runs through the buckets until the threshold is reached.
// That is C_in * k * k + T operations per neuron instead of T * C_in * k * k. Sums of
// float32 weights in float64 are exact, so the potentials equal the torch reference's
// float64 convolution of the cumulative spike waves bit for bit.
//
// Grid-stride loop over N * C_out * H_out * W_out neurons (consecutive threads: consecutive
// x, so input reads coalesce and weights are shared). Stride 1, zero padding `padding`.
// steps <= MAX_STEPS. potentials_out is written only when use_potentials != 0.

#define MAX_STEPS 64

extern "C" __global__ void first_spike_conv(
    float* __restrict__ times_out,          // [N, C_out, H_out, W_out], inf = never fired
    double* __restrict__ potentials_out,    // [N, C_out, H_out, W_out], 0 = never fired
    const float* __restrict__ in_times,     // [N, C_in, H, W], inf = never
    const double* __restrict__ weight,      // [C_out, C_in, k, k], non-negative
    const double threshold,
    const int use_potentials,
    const int batch,
    const int in_channels,
    const int height,
    const int width,
    const int out_channels,
    const int kernel_size,
    const int padding,
    const int steps)
{
    const float infinity = __int_as_float(0x7f800000);
    const int out_height = height + 2 * padding - kernel_size + 1;
    const int out_width = width + 2 * padding - kernel_size + 1;
    const long long neurons = (long long)batch * out_channels * out_height * out_width;
    const float last_step = (float)(steps - 1);
    double bucket[MAX_STEPS];
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < neurons;
         i += (long long)gridDim.x * blockDim.x) {
        const int x = (int)(i % out_width);
        const int y = (int)(i / out_width % out_height);
        const int c = (int)(i / ((long long)out_width * out_height) % out_channels);
        const long long n = i / ((long long)out_width * out_height * out_channels);
        for (int s = 0; s < steps; ++s) bucket[s] = 0.0;
        const double* w = weight + (long long)c * in_channels * kernel_size * kernel_size;
        for (int ci = 0; ci < in_channels; ++ci) {
            const float* plane = in_times + (n * in_channels + ci) * height * width;
            for (int dy = 0; dy < kernel_size; ++dy) {
                const int row = y - padding + dy;
                if (row < 0 || row >= height) continue;
                for (int dx = 0; dx < kernel_size; ++dx) {
                    const int col = x - padding + dx;
                    if (col < 0 || col >= width) continue;
                    const float t = plane[row * width + col];
                    if (t <= last_step) {  // arrives at step ceil(t) (0 if t <= 0); inf, NaN and late inputs never
                        bucket[t > 0.0f ? (int)ceilf(t) : 0] += w[(ci * kernel_size + dy) * kernel_size + dx];
                    }
                }
            }
        }
        double potential = 0.0;
        int first = steps;
        for (int s = 0; s < steps; ++s) {
            potential += bucket[s];
            if (potential >= threshold) {
                first = s;
                break;
            }
        }
        const bool fired = first < steps;
        times_out[i] = fired ? (float)first : infinity;
        if (use_potentials) potentials_out[i] = fired ? potential : 0.0;
    }
}
