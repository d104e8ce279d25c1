/* Native CPU implementations of stdp_plugins' learning operations. Every function follows
   the semantics of docs/spec.md and is tested against the torch reference. Tensors are
   contiguous, row-major; no function allocates unless it says so. */
#ifndef STDP_NATIVE_H
#define STDP_NATIVE_H

#include <stdint.h>

/* Greedy walk over the pointwise-inhibition survivors of one image (at most one per
   position): survivor[p] is the channel surviving at position p (-1 = none), with spike
   time survivor_t[p] and potential survivor_pot[p]. Survivors are taken by earliest time,
   highest potential, lowest flat index c * n_pos + p; one is accepted unless an accepted
   winner blocks it: mode bit 1 (global) blocks its channel, bit 2 (local) every position
   within Chebyshev distance `radius`. Stops after k winners (k <= 0: no cap).
   out_flat receives the winners' flat indices in the order accepted and -1 after the
   last (room for k entries, or n_pos when k <= 0); out_t (or NULL) their times.
   blocked_pos (n_pos bytes) and blocked_ch (c_out bytes) are scratch. */
void walk_survivors(long n_pos, int ho, int wo, int c_out, const int32_t *survivor, const float *survivor_t,
                    const double *survivor_pot, int mode, int radius, int k, uint8_t *blocked_pos,
                    uint8_t *blocked_ch, int32_t *out_flat, float *out_t);

/* walk_survivors continued over the n_new positions new_pos whose survivors all spike at
   now_t, later than every survivor walked before: the walk takes survivors by time first,
   so walking each step's new survivors in turn (highest potential, then lowest flat
   index) is the whole walk, and once `cap` winners are accepted later spikes change
   nothing. `accepted` winners are in out_flat / out_t already and blocked_pos /
   blocked_ch hold what they block (zero before the first call); returns the new count. */
long walk_new_survivors(long n_new, const int32_t *new_pos, long n_pos, int ho, int wo, const int32_t *survivor,
                        const double *survivor_pot, float now_t, int mode, int radius, long cap, long accepted,
                        uint8_t *blocked_pos, uint8_t *blocked_ch, int32_t *out_flat, float *out_t);

#endif
