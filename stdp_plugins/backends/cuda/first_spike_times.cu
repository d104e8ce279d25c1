// First spike of every neuron of a recorded window (docs/spec.md, 'First spike times').
//
// One thread per neuron (grid-stride loop over the m neurons of a [T, m] window):
//   times[i] = the first step t with spikes[t, i] != 0, inf if there is none;
//   value[i] = values[t, i] at that step, or with `cumulative` the sum of values[0..t, i]
//              accumulated in float64 and rounded once (like torch's CPU cumsum and the C
//              library); 0 for neurons that never fired.
// values and value are read and written only when use_values != 0.

extern "C" __global__ void first_spike_times(
    float* __restrict__ times,                // [m], written
    float* __restrict__ value,                // [m], written when use_values
    const unsigned char* __restrict__ spikes, // [T, m], non-zero = a spike
    const float* __restrict__ values,         // [T, m]
    const int use_values,
    const int cumulative,
    const int steps,
    const long long neurons)
{
    const float infinity = __int_as_float(0x7f800000);
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < neurons;
         i += (long long)gridDim.x * blockDim.x) {
        int first = steps;
        double sum = 0.0;
        for (int t = 0; t < steps; ++t) {
            if (use_values && cumulative) sum += (double)values[(long long)t * neurons + i];
            if (spikes[(long long)t * neurons + i] != 0) {
                first = t;
                break;
            }
        }
        const bool fired = first < steps;
        times[i] = fired ? (float)first : infinity;
        if (use_values) {
            value[i] = !fired ? 0.0f : (cumulative ? (float)sum : values[(long long)first * neurons + i]);
        }
    }
}
