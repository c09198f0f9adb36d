/* nvrtc.h — CUDA C to PTX at run time with NVRTC, loaded by dlopen so that
 * one binary runs (and reports cleanly) on machines without CUDA.  PTX is
 * cached on disk like the CPU kernels ($VCLIP_CACHE_DIR/kernels, keyed by
 * source + architecture + NVRTC version).  NVRTC needs no GPU, so every test
 * run compiles the generated CUDA kernels.  The library is $VCLIP_NVRTC if
 * set (a path, e.g. the nvidia-cuda-nvrtc wheel's), else libnvrtc.so on the
 * loader's path or in /usr/local/cuda. */
#ifndef VCLIP_NVRTC_H
#define VCLIP_NVRTC_H

#include <stddef.h>

/* 1 when libnvrtc loads (version in why, e.g. "NVRTC 13.0"), else 0 and the reason. */
int nvrtc_available(char *why, size_t cap);
/* PTX of source for a virtual architecture such as "compute_80" (malloc'd),
 * or NULL with the compiler log in err. */
char *nvrtc_compile(const char *source, const char *arch, char *err, size_t cap);

#endif
