/* jit_cpu.c — see jit_cpu.h.  Compilation runs the compiler as a child
 * process (posix_spawn), writes to a temporary name and renames, so that
 * concurrent processes sharing the cache never load a half-written object. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "jit_cpu.h"
#include "../../codegen/render.h"
#include "../../ir/base.h"

extern char **environ;

#define FLAGS "-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno"
#define FLAGS_TEXT "-O3 -fPIC -shared -ffp-contract=off -fno-math-errno"
#define CXX_FLAGS "-x", "c++", "-std=c++17", "-w"
#define CXX_FLAGS_TEXT "-x c++ -std=c++17 -w"
#define MAX_KERNELS 4096

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct { uint64_t key; void *fn; } table[MAX_KERNELS];
static int n_table, broken;
static char describe_buf[512];

static const char *compiler(void)
{
    const char *cc = getenv("VCLIP_CC");
    return cc && *cc ? cc : "cc";
}

static int debug_level(void)
{
    const char *e = getenv("VCLIP_DEBUG");
    return e ? atoi(e) : 0;
}

/* Runs argv, stdout+stderr into log; the exit status, or -1 if it cannot start. */
static int run(char *const *argv, const char *log)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) { errno = rc; return -1; }
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void give_up(const char *why)
{
    if (!broken) fprintf(stderr, "vclip: cannot compile kernels with '%s' (%s); fused kernels run on the reference path\n", compiler(), why);
    broken = 1;
}

FusedKernelFn jit_cpu_fused(const char *source)
{
    return (FusedKernelFn)(uintptr_t)jit_cpu_symbol(source, "vclip_fused");
}

/* The compiler and flags of a language (0: C, 1: C++ for jit_cpu_library). */
static const char *compiler_for(int cxx)
{
    const char *cxx_env = getenv("VCLIP_CXX");
    return !cxx ? compiler() : cxx_env && *cxx_env ? cxx_env : "c++";
}

/* source compiled to CACHE/kernels/KEY.so and loaded (RTLD_LOCAL); NULL with
 * the reason (for a failed compilation, the start of the compiler's log). */
static void *compile_library(const char *source, int cxx, const char *extra, char *err, size_t cap)
{
    const char *cc = compiler_for(cxx);
    uint64_t key = fnv1a_str(fnv1a_str(fnv1a_str(FNV_OFFSET, source), cc), cxx ? FLAGS_TEXT " " CXX_FLAGS_TEXT : FLAGS_TEXT);
    if (extra) key = fnv1a_str(key, extra);
    char dir[4096], so[4300], src[4300], tmp[4400], log[4300];
    if (vclip_cache_dir("kernels", dir, sizeof dir, err, cap)) return NULL;
    const char *ext = cxx ? "cc" : "c";
    snprintf(so, sizeof so, "%s/%016llx.so", dir, (unsigned long long)key);
    snprintf(src, sizeof src, "%s/%016llx.%s", dir, (unsigned long long)key, ext);
    snprintf(log, sizeof log, "%s/%016llx.log", dir, (unsigned long long)key);
    snprintf(tmp, sizeof tmp, "%s/%016llx.so.%d.tmp", dir, (unsigned long long)key, (int)getpid());
    if (debug_level() >= 2) fprintf(stderr, "vclip: kernel %016llx (VCLIP_DEBUG=2):\n%s", (unsigned long long)key, source);
    void *h = access(so, R_OK) == 0 ? dlopen(so, RTLD_NOW | RTLD_LOCAL) : NULL;
    if (h) return h;
    if (atomic_write(src, source, strlen(source), err, cap)) return NULL;
    char *c_argv[] = {(char *)cc, FLAGS, src, "-o", tmp, "-lm", (char *)extra, NULL};
    char *cxx_argv[] = {(char *)cc, FLAGS, CXX_FLAGS, src, "-o", tmp, (char *)extra, NULL};
    int st = run(cxx ? cxx_argv : c_argv, log);
    if (st != 0) {
        if (st > 0) {
            char *text = read_file(log, NULL, err, cap);
            snprintf(err, cap, "%s exit status %d (%.500s): %.1500s", cc, st, log, text ? text : "");
            free(text);
        } else snprintf(err, cap, "cannot run %s: %s", cc, strerror(errno));
        remove(tmp);
        return NULL;
    }
    if (rename(tmp, so) || !(h = dlopen(so, RTLD_NOW | RTLD_LOCAL))) {
        snprintf(err, cap, "%s", dlerror() ? dlerror() : "cannot load the compiled kernel");
        remove(tmp);
        return NULL;
    }
    if (debug_level() >= 1) fprintf(stderr, "vclip: compiled kernel %s\n", so);
    return h;
}

void *jit_cpu_library(const char *source, int cxx, const char *extra_flag, char *err, size_t cap)
{
    pthread_mutex_lock(&mu);
    void *h = compile_library(source, cxx, extra_flag, err, cap);
    pthread_mutex_unlock(&mu);
    return h;
}

void *jit_cpu_symbol(const char *source, const char *symbol)
{
    uint64_t key = fnv1a_str(fnv1a_str(fnv1a_str(fnv1a_str(FNV_OFFSET, source), compiler()), FLAGS_TEXT), symbol);
    void *fn = NULL;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n_table; i++) if (table[i].key == key) { fn = table[i].fn; goto done; }
    if (broken) goto done;
    char err[2048];
    void *h = compile_library(source, 0, NULL, err, sizeof err);
    if (!h || !(fn = dlsym(h, symbol))) { give_up(h ? "the compiled kernel lacks its symbol" : err); goto done; }
    if (n_table < MAX_KERNELS) { table[n_table].key = key; table[n_table].fn = fn; n_table++; }
done:
    pthread_mutex_unlock(&mu);
    return fn;
}

/* Compiled kernels by a hash of the programs they were rendered from, so a
 * program met again is neither rendered nor hashed as source.  Failures are
 * kept too: the compiler stays broken for the process. */
static struct { uint64_t key; void *fn; } memo[2 * MAX_KERNELS];
static int n_memo;

static uint64_t hash_program(const Program *p, uint64_t h)
{
    h = fnv1a(h, &p->n_in, sizeof p->n_in);
    h = fnv1a(h, &p->n_instr, sizeof p->n_instr);
    if (p->n_instr) h = fnv1a(h, p->code, sizeof(Instr) * (size_t)p->n_instr);
    if (p->n_const) h = fnv1a(h, p->consts, sizeof(float) * (size_t)p->n_const);
    /* the same code over views is another kernel (its loads and signature differ) */
    if (p->load_pieces) h = fnv1a(fnv1a(h, "views", 5), p->load_pieces, sizeof(int) * (size_t)p->n_in);
    return h;
}

static int memo_find(uint64_t key, void **fn)
{
    pthread_mutex_lock(&mu);
    int found = 0;
    for (int i = 0; i < n_memo && !found; i++)
        if (memo[i].key == key) { *fn = memo[i].fn; found = 1; }
    pthread_mutex_unlock(&mu);
    return found;
}

static void *memo_compile(uint64_t key, char *source, const char *symbol)
{
    void *fn = source ? jit_cpu_symbol(source, symbol) : NULL;
    free(source);
    pthread_mutex_lock(&mu);
    if (n_memo < 2 * MAX_KERNELS) {
        memo[n_memo].key = key;
        memo[n_memo].fn = fn;
        n_memo++;
    }
    pthread_mutex_unlock(&mu);
    return fn;
}

FusedKernelFn jit_cpu_program(const Program *p)
{
    uint64_t key = fnv1a_str(hash_program(p, fnv1a_str(FNV_OFFSET, "vclip_fused")), compiler());
    void *fn;
    if (!memo_find(key, &fn)) fn = memo_compile(key, program_render_c(p), "vclip_fused");
    return (FusedKernelFn)(uintptr_t)fn;
}

ReduceKernelFn jit_cpu_reduce(const Program *pro, const Program *epi, int reduce)
{
    uint64_t key = fnv1a(fnv1a_str(FNV_OFFSET, "vclip_reduce"), &reduce, sizeof reduce);
    key = fnv1a_str(hash_program(epi, hash_program(pro, key)), compiler());
    void *fn;
    if (!memo_find(key, &fn)) fn = memo_compile(key, program_render_c_reduce(pro, epi, reduce), "vclip_reduce");
    return (ReduceKernelFn)(uintptr_t)fn;
}

const char *jit_cpu_describe(void)
{
    char dir[4096], err[256];
    if (vclip_cache_dir("kernels", dir, sizeof dir, err, sizeof err)) snprintf(dir, sizeof dir, "(no cache: %s)", err);
    snprintf(describe_buf, sizeof describe_buf, "%s %s, cache %.400s", compiler(), FLAGS_TEXT, dir);
    return describe_buf;
}
