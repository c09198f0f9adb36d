/* jit_cpu.h — C kernels compiled at run time: the system C compiler builds a
 * shared object, dlopen loads it, and a disk cache keyed by source + compiler
 * + flags keeps it for the next process ($VCLIP_CACHE_DIR/kernels). */
#ifndef VCLIP_JIT_CPU_H
#define VCLIP_JIT_CPU_H

#include <stdint.h>

typedef void (*FusedKernelFn)(int64_t begin, int64_t end, int rank, const int64_t *dims, const float *const *in,
                              const int64_t *strides, float *out);

/* The compiled `vclip_fused` of source, or NULL when no compiler works (said
 * once on stderr; callers fall back to the reference kernels).  The compiler
 * is $VCLIP_CC, else cc.  Thread-safe. */
FusedKernelFn jit_cpu_fused(const char *source);
/* The same for a program: looked up by a hash of its code and constants, so
 * the C source is rendered (and hashed) only the first time a process meets
 * the program, not on every run of the node. */
struct Program;
FusedKernelFn jit_cpu_program(const struct Program *p);
/* Any symbol of a C source compiled the same way (NULL as above). */
void *jit_cpu_symbol(const char *source, const char *symbol);
/* A whole source compiled the same way into a shared object and loaded
 * (cached as above): C, or C++ with cxx (the compiler $VCLIP_CXX, else
 * c++), with one more flag if extra_flag is not NULL.  The dlopen handle,
 * or NULL with the reason, the compiler's log included; unlike the kernels
 * above a failure here is only reported. */
void *jit_cpu_library(const char *source, int cxx, const char *extra_flag, char *err, size_t cap);
/* The compiled `vclip_reduce` of a fused reduction (program.h), looked up by
 * a hash of its programs like jit_cpu_program. */
typedef void (*ReduceKernelFn)(int64_t row_begin, int64_t row_end, int64_t K, const float *const *in, const int64_t *rs, float *out);
ReduceKernelFn jit_cpu_reduce(const struct Program *pro, const struct Program *epi, int reduce);
/* Where kernels are cached, and the compiler command line in use. */
const char *jit_cpu_describe(void);

#endif
