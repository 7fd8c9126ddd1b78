// A float loop vectorised for the widest instructions the CPU running it has, chosen when the
// library loads (GCC's function multiversioning): the build stays portable across machines that
// share its cache, and the loop runs at the speed of torch's own vectorised kernels.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__APPLE__)
#define REGSTUDY_WIDEST_SIMD __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define REGSTUDY_WIDEST_SIMD
#endif
