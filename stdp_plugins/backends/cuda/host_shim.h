// Host build of the CUDA kernels: the same .cu sources compiled by g++ as C++ for the CPU,
// so that every kernel can be checked against the torch reference on machines without a
// GPU (docs/api/backends.rst, "GPU kernels").
//
// The CUDA execution model is mapped onto the CPU as follows:
//   - a launch runs the grid's blocks one after the other (x fastest, then y, then z, or all
//     reversed after host_set_reversed_order(1), which also reverses the threads' order);
//   - kernels without collectives run a block's threads as a plain loop;
//   - kernels with collectives (__syncthreads, warp ballots and shuffles) run every thread of
//     a block as a coroutine with its own stack (started with makecontext, switched with
//     _setjmp/_longjmp, which leave the signal mask alone); a collective suspends the thread
//     until every live thread of its block (barrier) or of its warp (ballot, shuffle) has
//     arrived at it, then every participant gets its result, so the emulation is faithful
//     for kernels whose collectives are reached uniformly by a block or a warp, which is
//     the rule on the GPU too. Threads that have returned no longer take part (as on the
//     GPU); a collective that can never complete aborts the launch with an error;
//   - atomics are plain read-modify-writes (nothing runs concurrently); __threadfence and the
//     cache-hint loads are plain memory operations; __shared__ variables are static, shared by
//     the threads of the block being run;
//   - the *_rn arithmetic intrinsics are the plain IEEE operations (the library is compiled
//     with -ffp-contract=off, like the GPU build with --fmad=false).
#ifndef STDP_PLUGINS_HOST_SHIM_H
#define STDP_PLUGINS_HOST_SHIM_H

#include <setjmp.h>
#include <ucontext.h>

#include <math.h>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

struct dim3 {
    unsigned int x, y, z;
};

namespace shim {

enum class Wait { ready, barrier, warp, done };
enum class WarpOp { ballot, shuffle_index, shuffle_down };

struct Thread {
    ucontext_t context;  // the thread's start
    jmp_buf resume;      // where it was suspended
    bool started;
    Wait wait;
    WarpOp op;
    std::uint64_t value;   // the operand's bits
    int argument;          // source lane or offset of a shuffle
    std::uint64_t result;  // the collective's result for this thread
};

struct Launch {
    dim3 thread, block, block_dim, grid_dim;
    std::vector<Thread> threads;
    jmp_buf scheduler;
    unsigned int current;
    bool coroutines;
    bool failed;
    bool reversed;  // run blocks and threads in reverse order (see host_set_reversed_order)
    void (*body)(void*);
    void* closure;
};

inline thread_local Launch state;

constexpr std::size_t STACK_BYTES = 1u << 16;
constexpr unsigned int WARP = 32;

inline void set_thread(unsigned int linear) {
    state.current = linear;
    state.thread.x = linear % state.block_dim.x;
    state.thread.y = linear / state.block_dim.x % state.block_dim.y;
    state.thread.z = linear / (state.block_dim.x * state.block_dim.y);
}

[[noreturn]] inline void trampoline() {
    state.body(state.closure);
    state.threads[state.current].wait = Wait::done;
    _longjmp(state.scheduler, 1);
}

// Suspend the running thread at a collective until the scheduler resumes it.
inline void suspend(Wait wait) {
    if (!state.coroutines) {  // a kernel registered without collectives used one
        state.failed = true;
        return;
    }
    Thread& self = state.threads[state.current];
    self.wait = wait;
    if (_setjmp(self.resume) == 0) _longjmp(state.scheduler, 1);
}

// Complete the warp collective of `warp` if every live lane waits at the same one.
inline bool release_warp(unsigned int warp, unsigned int count) {
    const unsigned int first = warp * WARP, last = first + WARP < count ? first + WARP : count;
    const Thread* leader = nullptr;
    for (unsigned int t = first; t < last; ++t) {
        const Thread& lane = state.threads[t];
        if (lane.wait == Wait::done) continue;
        if (lane.wait != Wait::warp || (leader && lane.op != leader->op)) return false;
        if (!leader) leader = &lane;
    }
    if (!leader) return false;
    std::uint64_t ballot = 0;
    for (unsigned int t = first; t < last; ++t)
        if (state.threads[t].wait == Wait::warp && state.threads[t].value) ballot |= std::uint64_t(1) << (t - first);
    for (unsigned int t = first; t < last; ++t) {
        Thread& lane = state.threads[t];
        if (lane.wait != Wait::warp) continue;
        if (lane.op == WarpOp::ballot) {
            lane.result = ballot;
        } else {  // a lane outside the warp or not taking part leaves the value unchanged
            const unsigned int source = lane.op == WarpOp::shuffle_index ? first + (unsigned int)lane.argument % WARP
                                                                          : t + (unsigned int)lane.argument;
            const bool present = source < last && source < first + WARP && state.threads[source].wait == Wait::warp;
            lane.result = present ? state.threads[source].value : lane.value;
        }
    }
    for (unsigned int t = first; t < last; ++t)
        if (state.threads[t].wait == Wait::warp) state.threads[t].wait = Wait::ready;
    return true;
}

// Run the current block's threads until all have returned; false if a collective deadlocks.
inline bool run_block(std::vector<char>& stacks) {
    const unsigned int count = state.block_dim.x * state.block_dim.y * state.block_dim.z;
    if (!state.coroutines) {
        for (unsigned int i = 0; i < count && !state.failed; ++i) {
            set_thread(state.reversed ? count - 1 - i : i);
            state.body(state.closure);
        }
        return !state.failed;
    }
    state.threads.assign(count, Thread{});
    for (unsigned int t = 0; t < count; ++t) {
        Thread& thread = state.threads[t];
        getcontext(&thread.context);
        thread.context.uc_stack.ss_sp = stacks.data() + (std::size_t)t * STACK_BYTES;
        thread.context.uc_stack.ss_size = STACK_BYTES;
        thread.context.uc_link = nullptr;  // the trampoline never returns
        makecontext(&thread.context, trampoline, 0);
        thread.wait = Wait::ready;
    }
    for (;;) {
        bool live = false;
        for (unsigned int i = 0; i < count; ++i) {
            const unsigned int t = state.reversed ? count - 1 - i : i;
            if (state.threads[t].wait != Wait::ready) continue;
            set_thread(t);
            Thread& thread = state.threads[t];
            if (_setjmp(state.scheduler) == 0) {
                if (thread.started) _longjmp(thread.resume, 1);
                thread.started = true;
                setcontext(&thread.context);
            }
        }
        bool all_at_barrier = true, released = false;
        for (unsigned int t = 0; t < count; ++t) {
            const Wait wait = state.threads[t].wait;
            live |= wait != Wait::done;
            all_at_barrier &= wait == Wait::done || wait == Wait::barrier;
        }
        if (!live) return true;
        if (all_at_barrier) {
            for (Thread& thread : state.threads)
                if (thread.wait == Wait::barrier) thread.wait = Wait::ready;
            continue;
        }
        for (unsigned int warp = 0; warp * WARP < count; ++warp) released |= release_warp(warp, count);
        if (!released) return false;
    }
}

// Run `body` as the kernel of a launch of `grid` blocks of `block` threads.
inline int launch(dim3 grid, dim3 block, bool coroutines, void (*body)(void*), void* closure) {
    state.grid_dim = grid;
    state.block_dim = block;
    state.coroutines = coroutines;
    state.failed = false;
    state.body = body;
    state.closure = closure;
    std::vector<char> stacks(coroutines ? (std::size_t)block.x * block.y * block.z * STACK_BYTES : 0);
    for (unsigned int z = 0; z < grid.z; ++z)
        for (unsigned int y = 0; y < grid.y; ++y)
            for (unsigned int x = 0; x < grid.x; ++x) {
                state.block = state.reversed ? dim3{grid.x - 1 - x, grid.y - 1 - y, grid.z - 1 - z} : dim3{x, y, z};
                if (!run_block(stacks) || state.failed) return -1;
            }
    return 0;
}

template <typename T>
std::uint64_t bits_of(T value) {
    static_assert(sizeof(T) <= sizeof(std::uint64_t), "shuffled values are at most 64 bits");
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    return bits;
}

template <typename T>
T value_of(std::uint64_t bits) {
    T value;
    std::memcpy(&value, &bits, sizeof(T));
    return value;
}

inline std::uint64_t warp_collective(WarpOp op, std::uint64_t value, int argument) {
    if (!state.coroutines) {  // a kernel registered without collectives used one
        state.failed = true;
        return 0;
    }
    Thread& self = state.threads[state.current];
    self.op = op;
    self.value = value;
    self.argument = argument;
    suspend(Wait::warp);
    return state.threads[state.current].result;
}

// Run a kernel: unpack cuLaunchKernel-style parameters (an array of pointers to the
// argument values) and call it for every thread of the launch.
template <typename... Args>
struct Call {
    void (*kernel)(Args...);
    void** parameters;

    template <std::size_t... I>
    void invoke(std::index_sequence<I...>) {
        kernel(*static_cast<std::remove_cv_t<Args>*>(parameters[I])...);
    }

    static void run(void* self) {
        static_cast<Call*>(self)->invoke(std::index_sequence_for<Args...>{});
    }
};

template <typename... Args>
int launch_kernel(void (*kernel)(Args...), const unsigned int* dims, bool coroutines, void** parameters) {
    Call<Args...> call{kernel, parameters};
    return launch(dim3{dims[0], dims[1], dims[2]}, dim3{dims[3], dims[4], dims[5]}, coroutines,
                  &Call<Args...>::run, &call);
}

}  // namespace shim

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static

#define threadIdx (shim::state.thread)
#define blockIdx (shim::state.block)
#define blockDim (shim::state.block_dim)
#define gridDim (shim::state.grid_dim)

inline void __syncthreads() { shim::suspend(shim::Wait::barrier); }
inline void __threadfence() {}

inline unsigned int __ballot_sync(unsigned int, int predicate) {
    return (unsigned int)shim::warp_collective(shim::WarpOp::ballot, predicate != 0, 0);
}

template <typename T>
T __shfl_sync(unsigned int, T value, int source) {
    return shim::value_of<T>(shim::warp_collective(shim::WarpOp::shuffle_index, shim::bits_of(value), source));
}

template <typename T>
T __shfl_down_sync(unsigned int, T value, unsigned int offset) {
    return shim::value_of<T>(shim::warp_collective(shim::WarpOp::shuffle_down, shim::bits_of(value), (int)offset));
}

template <typename T>
T __ldcg(const T* address) { return *address; }

template <typename T>
T atomicAdd(T* address, T value) {
    const T old = *address;
    *address = old + value;
    return old;
}

inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }

inline float __int_as_float(int x) { return shim::value_of<float>((std::uint64_t)(std::uint32_t)x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline double __dadd_rn(double a, double b) { return a + b; }

// One ctypes entry point per kernel: host_<kernel>(dims[6] = grid xyz, block xyz,
// parameters); returns 0, or -1 when a collective could not complete.
#define HOST_LAUNCHER(kernel, coroutines)                                               \
    extern "C" int host_##kernel(const unsigned int* dims, void** parameters) {          \
        return shim::launch_kernel(kernel, dims, coroutines, parameters);               \
    }

#endif
