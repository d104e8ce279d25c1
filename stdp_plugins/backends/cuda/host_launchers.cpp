// The host build of every kernel of this folder (see host_shim.h): one C entry point
// host_<kernel>(dims, parameters) per kernel, called through ctypes by
// stdp_plugins.backends._cuda_host with the same launch plans and argument lists as the
// CuPy launches. The second argument of HOST_LAUNCHER says whether the kernel uses
// collectives (block barriers or warp intrinsics), which its threads then run as coroutines.
#include "host_shim.h"

#include "fused_stdp.cu"
#include "sequential_stdp.cu"
#include "select_winners.cu"
#include "first_spike_times.cu"
#include "first_spike_conv.cu"

HOST_LAUNCHER(fused_stdp_update, true)
HOST_LAUNCHER(sequential_stdp_update, true)
HOST_LAUNCHER(select_winners_walk, true)
HOST_LAUNCHER(first_spike_times, false)
HOST_LAUNCHER(first_spike_conv, false)

// Run blocks and the threads between collectives in reverse order from now on (reversed != 0)
// or in order (the default), for this OS thread: a kernel whose result depends on that order
// has a race that the GPU would show.
extern "C" void host_set_reversed_order(int reversed) { shim::state.reversed = reversed != 0; }
