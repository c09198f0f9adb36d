/* test_kernels_amx.c — the GEMM's AMX kernel checked on any CPU with
 * AVX512-BF16: test_kernels' GEMM checks (every shape, transpose, epilogue,
 * bf16 A and C) with the AMX kernel pinned, its tile instructions run by a
 * host stand-in (amx_emulator.h).  gemm.c is compiled into this program, so
 * the library's GEMM calls (Linear, Gemm) reach this copy.  On a CPU with
 * AMX, test_kernels runs the same checks on the tiles themselves. */
#if defined(__x86_64__)
#include "amx_emulator.h"
#include "../../runtime/cpu/gemm.c"
#endif
#include "test_kernels.c"
