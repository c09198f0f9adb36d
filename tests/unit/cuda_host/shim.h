/* shim.h — enough of CUDA C on the host that the exact kernel text NVRTC
 * compiles also builds with the host's C++ compiler and runs, so every
 * kernel is executed and checked on machines without a GPU
 * (tests/unit/cuda_host.h compiles `#include "shim.h"` + the source + a
 * table of its __global__ functions into a shared object).
 *
 * A launch runs the grid's blocks one after another; a block's threads are
 * fibers on their own stacks that switch only where CUDA threads wait for
 * each other: __syncthreads (every live thread of the block), the warp
 * shuffles and votes, __syncwarp (every lane the mask names).  Between
 * those points a thread runs alone, so atomics are plain read-modify-write
 * and shared memory is a static array (blocks never overlap).  Warps take
 * turns, each running as far as it can before the next starts (up to a
 * __syncthreads), in warp order or, when a launch asks, in reverse, so a
 * missing barrier shows up as a stale read in one order or the other.
 * What CUDA leaves undefined is an error here, reported with the kernel
 * and thread: a barrier some threads never reach (deadlock), a shuffle
 * whose mask names lanes that exited or do not exist, lanes of one warp
 * meeting at different operations. */
#ifndef VCLIP_CUDA_HOST_SHIM_H
#define VCLIP_CUDA_HOST_SHIM_H

#include <cmath>
#include <math.h>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

/* ---- the language ------------------------------------------------------ */

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n)

struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

namespace vclip_host {

enum { RUNNING, AT_BARRIER, AT_WARP, EXITED };
enum { W_SHFL, W_SHFL_XOR, W_SHFL_UP, W_SHFL_DOWN, W_BALLOT, W_ANY, W_ALL, W_SYNCWARP };
static const char *const warp_op_names[] = {"__shfl_sync", "__shfl_xor_sync", "__shfl_up_sync", "__shfl_down_sync",
                                            "__ballot_sync", "__any_sync", "__all_sync", "__syncwarp"};

struct Fiber {
    void *sp;
    uint3 tid;
    int lane, state;
    /* at a warp operation: what, with which mask, the value offered, the
     * lane read from (computed by the lane), and the answer */
    int op;
    unsigned mask;
    unsigned long long value, result;
    int src;
};

enum { max_threads = 1024 };
static Fiber fibers[max_threads];
static char *stacks; /* max_threads stacks of stack_bytes, given by the caller */
static size_t stack_bytes;
static Fiber *current;
static void *scheduler_sp;
/* the warp's turn in progress: its threads lo..hi, taken in steps of step (1 or -1) */
static int turn_lo, turn_hi, turn_step;
static void (*running_thunk)(void **);
static void **running_args;
static uint3 block_index;
static dim3 block_dim, grid_dim;
static unsigned char *dynamic_shared;
static size_t dynamic_shared_cap;

} // namespace vclip_host

#define threadIdx (vclip_host::current->tid)
#define blockIdx (vclip_host::block_index)
#define blockDim (vclip_host::block_dim)
#define gridDim (vclip_host::grid_dim)
#define warpSize 32

/* ---- fibers: a context switch that saves the callee-saved registers ---- */

#if defined(__x86_64__)
extern "C" void vclip_host_switch(void **save_sp, void *to_sp);
__asm__(".text\n"
        ".type vclip_host_switch,@function\n"
        "vclip_host_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  subq $8, %rsp\n"
        "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
        "  addq $8, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size vclip_host_switch, .-vclip_host_switch\n");
#elif defined(__aarch64__)
extern "C" void vclip_host_switch(void **save_sp, void *to_sp);
__asm__(".text\n"
        ".type vclip_host_switch,%function\n"
        "vclip_host_switch:\n"
        "  sub sp, sp, #176\n"
        "  stp x19, x20, [sp, #0]\n  stp x21, x22, [sp, #16]\n  stp x23, x24, [sp, #32]\n  stp x25, x26, [sp, #48]\n"
        "  stp x27, x28, [sp, #64]\n  stp x29, x30, [sp, #80]\n  stp d8, d9, [sp, #96]\n  stp d10, d11, [sp, #112]\n"
        "  stp d12, d13, [sp, #128]\n  stp d14, d15, [sp, #144]\n"
        "  mov x9, sp\n  str x9, [x0]\n  mov sp, x1\n"
        "  ldp x19, x20, [sp, #0]\n  ldp x21, x22, [sp, #16]\n  ldp x23, x24, [sp, #32]\n  ldp x25, x26, [sp, #48]\n"
        "  ldp x27, x28, [sp, #64]\n  ldp x29, x30, [sp, #80]\n  ldp d8, d9, [sp, #96]\n  ldp d10, d11, [sp, #112]\n"
        "  ldp d12, d13, [sp, #128]\n  ldp d14, d15, [sp, #144]\n"
        "  add sp, sp, #176\n  ret\n"
        ".size vclip_host_switch, .-vclip_host_switch\n");
#else
#error "the CUDA host shim switches fibers on x86-64 and AArch64 only"
#endif

namespace vclip_host {

/* A thread that waits hands over to the next thread of its warp's turn
 * that still runs, or, at the turn's end, to the scheduler: the order the
 * scheduler would take them in, with half the switches. */
static void yield_to_scheduler()
{
    Fiber *me = current;
    for (int k = (int)(me - fibers) + turn_step; k >= turn_lo && k <= turn_hi; k += turn_step)
        if (fibers[k].state == RUNNING) {
            current = &fibers[k];
            vclip_host_switch(&me->sp, fibers[k].sp);
            return;
        }
    vclip_host_switch(&me->sp, scheduler_sp);
}

[[noreturn]] static void fiber_main()
{
    running_thunk(running_args);
    current->state = EXITED;
    yield_to_scheduler();
    std::abort(); /* an exited fiber is never resumed */
}

/* A fresh stack whose first switch "returns" into fiber_main. */
static void *fiber_stack(int k)
{
    /* staggered by a few cache lines per thread: tops exactly stack_bytes
     * apart would all fall in the same cache sets */
    char *top = stacks + (size_t)(k + 1) * stack_bytes - (size_t)(k % 128) * 192;
    uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
#if defined(__x86_64__)
    uint64_t *sp = (uint64_t *)(t - 16);       /* fiber_main entered with rsp = 8 mod 16 */
    sp[0] = (uint64_t)(uintptr_t)&fiber_main;  /* the return address */
    sp -= 6;                                    /* rbp rbx r12..r15 */
    for (int r = 0; r < 6; r++) sp[r] = 0;
    sp -= 1;
    uint32_t ctl[2] = {0x1F80, 0x037F};         /* default MXCSR and x87 control word */
    memcpy(sp, ctl, sizeof ctl);
    return sp;
#else
    uint64_t *sp = (uint64_t *)(t - 176);
    memset(sp, 0, 176);
    sp[11] = (uint64_t)(uintptr_t)&fiber_main;  /* x30, the link register */
    return sp;
#endif
}

/* ---- warp operations ----------------------------------------------------- */

static unsigned long long warp_wait(int op, unsigned mask, unsigned long long value, int src)
{
    Fiber *f = current;
    f->op = op;
    f->mask = mask;
    f->value = value;
    f->src = src;
    f->state = AT_WARP;
    yield_to_scheduler();
    return f->result;
}

template <typename T> static unsigned long long bits_of(T v)
{
    unsigned long long b = 0;
    memcpy(&b, &v, sizeof v);
    return b;
}
template <typename T> static T from_bits(unsigned long long b)
{
    T v;
    memcpy(&v, &b, sizeof v);
    return v;
}

} // namespace vclip_host

template <typename T> __device__ T __shfl_sync(unsigned mask, T v, int src, int width = 32)
{
    int lane = vclip_host::current->lane, base = lane & ~(width - 1);
    return vclip_host::from_bits<T>(vclip_host::warp_wait(vclip_host::W_SHFL, mask, vclip_host::bits_of(v), base + (src & (width - 1))));
}
template <typename T> __device__ T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    int lane = vclip_host::current->lane, src = lane ^ lane_mask;
    if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
    return vclip_host::from_bits<T>(vclip_host::warp_wait(vclip_host::W_SHFL_XOR, mask, vclip_host::bits_of(v), src));
}
template <typename T> __device__ T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int lane = vclip_host::current->lane, src = lane - (int)delta;
    if (src < (lane & ~(width - 1))) src = lane;
    return vclip_host::from_bits<T>(vclip_host::warp_wait(vclip_host::W_SHFL_UP, mask, vclip_host::bits_of(v), src));
}
template <typename T> __device__ T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int lane = vclip_host::current->lane, src = lane + (int)delta;
    if (src >= (lane & ~(width - 1)) + width) src = lane;
    return vclip_host::from_bits<T>(vclip_host::warp_wait(vclip_host::W_SHFL_DOWN, mask, vclip_host::bits_of(v), src));
}
__device__ inline unsigned __ballot_sync(unsigned mask, int pred) { return (unsigned)vclip_host::warp_wait(vclip_host::W_BALLOT, mask, pred != 0, 0); }
__device__ inline int __any_sync(unsigned mask, int pred) { return vclip_host::warp_wait(vclip_host::W_ANY, mask, pred != 0, 0) != 0; }
__device__ inline int __all_sync(unsigned mask, int pred) { return vclip_host::warp_wait(vclip_host::W_ALL, mask, pred != 0, 0) != 0; }
__device__ inline void __syncwarp(unsigned mask = 0xffffffffu) { vclip_host::warp_wait(vclip_host::W_SYNCWARP, mask, 0, 0); }
__device__ inline void __syncthreads()
{
    vclip_host::current->state = vclip_host::AT_BARRIER;
    vclip_host::yield_to_scheduler();
}
__device__ inline unsigned __activemask()
{
    unsigned m = 0;
    int warp0 = (int)(vclip_host::current - vclip_host::fibers) & ~31;
    int n = (int)(vclip_host::block_dim.x * vclip_host::block_dim.y * vclip_host::block_dim.z);
    for (int l = 0; l < 32 && warp0 + l < n; l++)
        if (vclip_host::fibers[warp0 + l].state != vclip_host::EXITED) m |= 1u << l;
    return m;
}

/* ---- atomics: a thread runs alone between waits ------------------------ */

template <typename T> __device__ T atomicAdd(T *p, T v) { T old = *p; *p = old + v; return old; }
template <typename T> __device__ T atomicSub(T *p, T v) { T old = *p; *p = old - v; return old; }
template <typename T> __device__ T atomicMax(T *p, T v) { T old = *p; *p = old > v ? old : v; return old; }
template <typename T> __device__ T atomicMin(T *p, T v) { T old = *p; *p = old < v ? old : v; return old; }
template <typename T> __device__ T atomicExch(T *p, T v) { T old = *p; *p = v; return old; }
template <typename T> __device__ T atomicCAS(T *p, T cmp, T v) { T old = *p; if (old == cmp) *p = v; return old; }

/* ---- math and bit casts ------------------------------------------------- */

__device__ inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
__device__ inline float __expf(float x) { return std::exp(x); }
__device__ inline float __logf(float x) { return std::log(x); }
__device__ inline float __fdividef(float a, float b) { return a / b; }
__device__ inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
__device__ inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
__device__ inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
__device__ inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
__device__ inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }

/* bf16 and half as cuda_bf16.h / cuda_fp16.h define them: storage types
 * with round-to-nearest-even conversions (NaN stays NaN). */
struct __nv_bfloat16 { unsigned short x; };
struct __half { unsigned short x; };
__device__ inline __nv_bfloat16 __float2bfloat16(float f)
{
    unsigned u = __float_as_uint(f);
    __nv_bfloat16 b;
    if ((u & 0x7fffffffu) > 0x7f800000u) b.x = (unsigned short)((u >> 16) | 0x40);
    else b.x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return b;
}
__device__ inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
__device__ inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float((unsigned)b.x << 16); }
__device__ inline __half __float2half(float f)
{
    _Float16 h = (_Float16)f; /* the compiler's conversion rounds to nearest even */
    __half r;
    memcpy(&r.x, &h, 2);
    return r;
}
__device__ inline __half __float2half_rn(float f) { return __float2half(f); }
__device__ inline float __half2float(__half h)
{
    _Float16 v;
    memcpy(&v, &h.x, 2);
    return (float)v;
}

/* ---- launching ------------------------------------------------------------ */

namespace vclip_host {

/* The lanes of warp w (first thread w*32) that a released operation
 * involves: all live lanes are at the same operation with the same mask,
 * and that mask names only live lanes.  1: released; 0: not ready; -1:
 * undefined behaviour, described in err. */
static int release_warp(int w, int n_threads, char *err, size_t cap, const char *kernel)
{
    int first = w * 32, count = n_threads - first < 32 ? n_threads - first : 32, leader = -1;
    for (int l = 0; l < count; l++) {
        Fiber *f = &fibers[first + l];
        if (f->state == EXITED) continue;
        if (f->state != AT_WARP) return 0;
        if (leader < 0) leader = l;
    }
    if (leader < 0) return 0;
    const Fiber *lf = &fibers[first + leader];
    for (int l = 0; l < count; l++) {
        const Fiber *f = &fibers[first + l];
        if (f->state == EXITED) continue;
        if (f->op != lf->op || f->mask != lf->mask) {
            snprintf(err, cap, "%s: block (%u,%u,%u): in warp %d lane %d is at %s (mask %#x), lane %d at %s (mask %#x)", kernel,
                     block_index.x, block_index.y, block_index.z, w, leader, warp_op_names[lf->op], lf->mask, l, warp_op_names[f->op], f->mask);
            return -1;
        }
    }
    for (int l = 0; l < 32; l++)
        if ((lf->mask >> l & 1) && (l >= count || fibers[first + l].state == EXITED)) {
            snprintf(err, cap, "%s: block (%u,%u,%u): %s in warp %d names lane %d in its mask %#x, but that lane %s", kernel,
                     block_index.x, block_index.y, block_index.z, warp_op_names[lf->op], w, l, lf->mask,
                     l >= count ? "does not exist (the block is smaller)" : "has exited");
            return -1;
        }
    unsigned ballot = 0;
    for (int l = 0; l < count; l++)
        if ((lf->mask >> l & 1) && fibers[first + l].value) ballot |= 1u << l;
    for (int l = 0; l < count; l++) {
        Fiber *f = &fibers[first + l];
        if (f->state == EXITED) continue;
        switch (f->op) {
        case W_BALLOT: f->result = ballot; break;
        case W_ANY: f->result = ballot != 0; break;
        case W_ALL: f->result = ballot == lf->mask; break;
        case W_SYNCWARP: f->result = 0; break;
        default:
            /* a lane outside the mask reads garbage on a GPU: a NaN here */
            f->result = f->src >= 0 && f->src < count && (lf->mask >> f->src & 1) ? fibers[first + f->src].value : 0x7fc00001u;
        }
        f->state = RUNNING;
    }
    return 1;
}

/* One block to the end: 0, or -1 with err.  Warps take turns, each run
 * as far as it gets (its lanes meeting at its own warp operations) before
 * the next starts, so one warp runs ahead of the others as GPUs allow;
 * the turns go in warp order, or in reverse. */
static int run_block(int n_threads, int reverse, char *err, size_t cap, const char *kernel)
{
    for (int k = 0; k < n_threads; k++) {
        Fiber *f = &fibers[k];
        f->tid.x = (unsigned)k % block_dim.x;
        f->tid.y = (unsigned)k / block_dim.x % block_dim.y;
        f->tid.z = (unsigned)k / (block_dim.x * block_dim.y);
        f->lane = k & 31;
        f->state = RUNNING;
        f->sp = fiber_stack(k);
    }
    int n_warps = (n_threads + 31) / 32;
    for (;;) {
        for (int j = 0; j < n_warps; j++) {
            int w = reverse ? n_warps - 1 - j : j, first = w * 32, count = n_threads - first < 32 ? n_threads - first : 32, r;
            turn_lo = first;
            turn_hi = first + count - 1;
            turn_step = reverse ? -1 : 1;
            do {
                for (int k = reverse ? turn_hi : turn_lo; k >= turn_lo && k <= turn_hi; k += turn_step)
                    if (fibers[k].state == RUNNING) { /* it runs, and passes on to the others (yield_to_scheduler) */
                        current = &fibers[k];
                        vclip_host_switch(&scheduler_sp, fibers[k].sp);
                        break;
                    }
                if ((r = release_warp(w, n_threads, err, cap, kernel)) < 0) return -1;
            } while (r);
        }
        int live = 0, at_barrier = 0, w = -1, b = -1;
        for (int k = 0; k < n_threads; k++) {
            live += fibers[k].state != EXITED;
            at_barrier += fibers[k].state == AT_BARRIER;
            if (fibers[k].state == AT_WARP && w < 0) w = k;
            if (fibers[k].state == AT_BARRIER && b < 0) b = k;
        }
        if (!live) return 0;
        if (at_barrier == live) {
            for (int k = 0; k < n_threads; k++)
                if (fibers[k].state == AT_BARRIER) fibers[k].state = RUNNING;
            continue;
        }
        snprintf(err, cap, "%s: block (%u,%u,%u) deadlocks: thread %d waits at __syncthreads while thread %d waits at %s", kernel,
                 block_index.x, block_index.y, block_index.z, b, w, w >= 0 ? warp_op_names[fibers[w].op] : "?");
        return -1;
    }
}

static int launch(const char *kernel, void (*thunk)(void **), void **args, const unsigned *grid, const unsigned *block,
                  unsigned shared_bytes, int reverse, char *err, size_t cap)
{
    size_t n_threads = (size_t)block[0] * block[1] * block[2];
    if (!n_threads || n_threads > max_threads || !grid[0] || !grid[1] || !grid[2]) {
        snprintf(err, cap, "%s: launch geometry grid (%u,%u,%u) block (%u,%u,%u) is invalid", kernel, grid[0], grid[1], grid[2],
                 block[0], block[1], block[2]);
        return -1;
    }
    if (shared_bytes > dynamic_shared_cap) {
        free(dynamic_shared);
        dynamic_shared = (unsigned char *)malloc(shared_bytes);
        dynamic_shared_cap = dynamic_shared ? shared_bytes : 0;
        if (!dynamic_shared) { snprintf(err, cap, "no memory for %u bytes of dynamic shared memory", shared_bytes); return -1; }
    }
    running_thunk = thunk;
    running_args = args;
    block_dim = dim3(block[0], block[1], block[2]);
    grid_dim = dim3(grid[0], grid[1], grid[2]);
    for (unsigned z = 0; z < grid[2]; z++)
        for (unsigned y = 0; y < grid[1]; y++)
            for (unsigned x = 0; x < grid[0]; x++) {
                block_index = uint3{x, y, z};
                if (run_block((int)n_threads, reverse, err, cap, kernel)) return -1;
            }
    return 0;
}

/* A kernel's parameters: their sizes and alignments, and a call from an
 * argument array (one pointer per parameter, as cuLaunchKernel takes). */
template <typename F> struct Signature;
template <typename... A> struct Signature<void (*)(A...)> {
    static constexpr size_t n = sizeof...(A);
    static int describe(size_t *size, size_t *align, int max)
    {
        const size_t s[] = {sizeof(A)..., 0}, a[] = {alignof(A)..., 0};
        int n = (int)sizeof...(A);
        for (int i = 0; i < n && i < max; i++) { size[i] = s[i]; align[i] = a[i]; }
        return n;
    }
    template <void (*F)(A...), size_t... I> static void call(void **args, std::index_sequence<I...>)
    {
        F(*static_cast<typename std::remove_reference<A>::type *>(args[I])...);
    }
};
template <auto F> static void thunk(void **args)
{
    Signature<decltype(F)>::template call<F>(args, std::make_index_sequence<Signature<decltype(F)>::n>{});
}

struct Kernel {
    const char *name;
    void (*thunk)(void **);
    int (*describe)(size_t *, size_t *, int);
};

} // namespace vclip_host

/* What cuda_host.h calls (by dlsym): a launch of one of the object's
 * kernels (its table, vclip_host_kernels, follows the source), on 1024
 * fiber stacks of stack_bytes each that the caller owns (one set for all
 * objects; each has a guard page at its low end). */
extern "C" int vclip_host_launch(const vclip_host::Kernel *k, void **args, const unsigned *grid, const unsigned *block,
                                 unsigned shared_bytes, int reverse, char *stacks, size_t stack_bytes, char *err, size_t cap)
{
    vclip_host::stacks = stacks;
    vclip_host::stack_bytes = stack_bytes;
    return vclip_host::launch(k->name, k->thunk, args, grid, block, shared_bytes, reverse, err, cap);
}

/* Dynamic shared memory (extern __shared__ T name[] in the source, which
 * cuda_host.h rewrites to this). */
#define VCLIP_HOST_DYNAMIC_SHARED(T, name) T *const name = (T *)vclip_host::dynamic_shared

#endif
