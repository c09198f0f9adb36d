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

static void *load(const char *so, const char *symbol)
{
    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    return h ? dlsym(h, symbol) : NULL;
}

FusedKernelFn jit_cpu_fused(const char *source)
{
    return (FusedKernelFn)(uintptr_t)jit_cpu_symbol(source, "vclip_fused");
}

void *jit_cpu_symbol(const char *source, const char *symbol)
{
    uint64_t key = fnv1a_str(fnv1a_str(fnv1a_str(fnv1a_str(FNV_OFFSET, source), compiler()), FLAGS_TEXT), symbol);
    void *fn = NULL;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n_table; i++) if (table[i].key == key) { fn = table[i].fn; goto done; }
    if (broken) goto done;
    char dir[4096], err[512], so[4300], src[4300], tmp[4400], log[4300];
    if (vclip_cache_dir("kernels", dir, sizeof dir, err, sizeof err)) { give_up(err); goto done; }
    snprintf(so, sizeof so, "%s/%016llx.so", dir, (unsigned long long)key);
    snprintf(src, sizeof src, "%s/%016llx.c", dir, (unsigned long long)key);
    snprintf(log, sizeof log, "%s/%016llx.log", dir, (unsigned long long)key);
    snprintf(tmp, sizeof tmp, "%s/%016llx.so.%d.tmp", dir, (unsigned long long)key, (int)getpid());
    if (debug_level() >= 2) fprintf(stderr, "vclip: kernel %016llx (VCLIP_DEBUG=2):\n%s", (unsigned long long)key, source);
    if (access(so, R_OK) == 0 && (fn = load(so, symbol))) goto remember;
    if (atomic_write(src, source, strlen(source), err, sizeof err)) { give_up(err); goto done; }
    char *argv[] = {(char *)compiler(), FLAGS, src, "-o", tmp, "-lm", NULL};
    int st = run(argv, log);
    if (st != 0) {
        char why[600];
        if (st > 0) snprintf(why, sizeof why, "exit status %d, see %.500s", st, log);
        else snprintf(why, sizeof why, "%s", strerror(errno));
        remove(tmp);
        give_up(why);
        goto done;
    }
    if (rename(tmp, so) || !(fn = load(so, symbol))) { remove(tmp); give_up(dlerror() ? dlerror() : "cannot load the compiled kernel"); goto done; }
    if (debug_level() >= 1) fprintf(stderr, "vclip: compiled kernel %s\n", so);
remember:
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
