/* base.c — see base.h. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "base.h"

uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

uint64_t fnv1a_str(uint64_t h, const char *s) { return fnv1a(h, s, strlen(s)); }

uint64_t fnv1a_u64(uint64_t h, uint64_t x) { return (h ^ x) * 1099511628211ull; }

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int make_dirs(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) { errno = ENAMETOOLONG; return -1; }
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0777) && errno != EEXIST) return -1;
            *p = '/';
        }
    return (mkdir(tmp, 0777) && errno != EEXIST) ? -1 : 0;
}

int vclip_cache_dir(const char *sub, char *out, size_t cap, char *err, size_t ecap)
{
    const char *base = getenv("VCLIP_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (base && *base) snprintf(out, cap, "%s/%s", base, sub);
    else if (xdg && *xdg) snprintf(out, cap, "%s/vclip/%s", xdg, sub);
    else snprintf(out, cap, "%s/.cache/vclip/%s", home ? home : "/tmp", sub);
    if (make_dirs(out)) { snprintf(err, ecap, "cannot create the cache folder %s: %s", out, strerror(errno)); return -1; }
    return 0;
}

int atomic_open(AtomicFile *af, const char *path, const char *mode, char *err, size_t cap)
{
    memset(af, 0, sizeof *af);
    if (snprintf(af->path, sizeof af->path, "%s", path) >= (int)sizeof af->path) {
        snprintf(err, cap, "%.200s...: path too long", path);
        return -1;
    }
    /* the host and pid keep concurrent writers of one target apart (processes,
     * and ranks on several machines sharing a file system) */
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%08x.%d", path, (unsigned)fnv1a_str(FNV_OFFSET, host), (int)getpid());
    af->f = fopen(af->tmp, mode);
    if (!af->f) { snprintf(err, cap, "%s: %s", af->tmp, strerror(errno)); return -1; }
    return 0;
}

int atomic_commit(AtomicFile *af, char *err, size_t cap)
{
    if (!af->f) { snprintf(err, cap, "%s: not open", af->path); return -1; }
    int bad = ferror(af->f) || fflush(af->f) || fsync(fileno(af->f));
    int e = errno;
    if (fclose(af->f)) { bad = 1; e = errno; }
    af->f = NULL;
    if (!bad && rename(af->tmp, af->path)) { bad = 1; e = errno; }
    if (bad) {
        snprintf(err, cap, "cannot write %s: %s", af->path, strerror(e ? e : EIO));
        unlink(af->tmp);
        return -1;
    }
    return 0;
}

void atomic_abort(AtomicFile *af)
{
    if (af->f) fclose(af->f);
    af->f = NULL;
    if (af->tmp[0]) unlink(af->tmp);
}

int atomic_write(const char *path, const void *data, size_t n, char *err, size_t cap)
{
    AtomicFile af;
    if (atomic_open(&af, path, "wb", err, cap)) return -1;
    if (n && fwrite(data, 1, n, af.f) != n) {
        snprintf(err, cap, "cannot write %s: %s", path, strerror(errno));
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, err, cap);
}

char *read_file(const char *path, size_t *len, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, cap, "%s: %s", path, strerror(errno)); return NULL; }
    size_t n = 0, c = 1 << 16;
    char *buf = malloc(c);
    size_t r;
    while (buf && (r = fread(buf + n, 1, c - n - 1, f)) > 0) {
        n += r;
        if (c - n < 4096) {
            char *nb = realloc(buf, c * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            c *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) { snprintf(err, cap, "%s: %s", path, buf ? "read error" : "out of memory"); free(buf); return NULL; }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int exe_dir(char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash || (size_t)(slash - exe) >= cap) return -1;
    *slash = 0;
    snprintf(out, cap, "%s", exe);
    return 0;
}

char *data_path(const char *relative)
{
    char dir[PATH_MAX], cand[PATH_MAX * 2];
    Dl_info self;
    if (dladdr((void *)data_path, &self) && self.dli_fname && strchr(self.dli_fname, '/')) {
        /* the object this code is in: an installed libvclip.so (PREFIX/lib ->
         * PREFIX/share/vclip) or the Python package's copy (its vclip-data/) */
        snprintf(dir, sizeof dir, "%s", self.dli_fname);
        *strrchr(dir, '/') = 0;
        const char *homes[] = {"../share/vclip", "vclip-data"};
        for (size_t i = 0; i < 2; i++) {
            snprintf(cand, sizeof cand, "%s/%s/%s", dir, homes[i], relative);
            if (access(cand, R_OK) == 0) return strdup(cand);
        }
    }
    if (exe_dir(dir, sizeof dir) == 0) {
        const char *ups[] = {"..", "../.."};
        for (size_t i = 0; i < 2; i++) {
            snprintf(cand, sizeof cand, "%s/%s/%s", dir, ups[i], relative);
            if (access(cand, R_OK) == 0) return strdup(cand);
        }
    }
#ifdef VCLIP_DATA_DIR
    snprintf(cand, sizeof cand, "%s/%s", VCLIP_DATA_DIR, relative);
    if (access(cand, R_OK) == 0) return strdup(cand);
#endif
    return NULL;
}
