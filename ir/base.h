/* base.h — the few helpers every layer needs, one copy each: a hash for
 * cache keys, a monotonic clock, the cache folder, and writing a file so
 * that a reader never sees it half-written.  They sit on the ground floor so
 * that nothing has to reach up (or keep its own copy) to use them. */
#ifndef VCLIP_BASE_H
#define VCLIP_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* 64-bit FNV-1a: start from FNV_OFFSET and feed bytes in any pieces. */
#define FNV_OFFSET 1469598103934665603ull
uint64_t fnv1a(uint64_t h, const void *data, size_t n);
uint64_t fnv1a_str(uint64_t h, const char *s);
uint64_t fnv1a_u64(uint64_t h, uint64_t x); /* one 64-bit word at a time (sizes, shapes) */

/* Milliseconds on the monotonic clock (for durations only). */
double now_ms(void);

/* CACHE/sub, created with its parents: CACHE is $VCLIP_CACHE_DIR,
 * $XDG_CACHE_HOME/vclip or ~/.cache/vclip.  0, or -1 with a message. */
int vclip_cache_dir(const char *sub, char *out, size_t cap, char *err, size_t ecap);
/* mkdir -p.  0 or -1 (errno set). */
int make_dirs(const char *path);

/* A file written under a temporary name in the same folder and renamed over
 * the target once complete and on disk (fsync), so readers see the old file
 * or the whole new one, never a torn one, also when the disk fills or the
 * process dies.  Write to af->f between open and commit. */
typedef struct {
    FILE *f;
    char path[4096], tmp[4128];
} AtomicFile;
/* mode: "w" or "wb".  0, or -1 with a message naming the file. */
int atomic_open(AtomicFile *af, const char *path, const char *mode, char *err, size_t cap);
/* Flush, fsync, close, rename.  0, or -1 with a message; on failure the
 * temporary file is removed and the target left as it was. */
int atomic_commit(AtomicFile *af, char *err, size_t cap);
/* Gives up: closes and removes the temporary file. */
void atomic_abort(AtomicFile *af);
/* The whole of data[n] as path's new contents.  0, or -1 with a message. */
int atomic_write(const char *path, const void *data, size_t n, char *err, size_t cap);

/* A whole file in memory, NUL-terminated (*len bytes before the NUL; len may
 * be NULL).  NULL with a message naming the file. */
char *read_file(const char *path, size_t *len, char *err, size_t cap);

/* The running binary's folder (from /proc/self/exe).  0, or -1. */
int exe_dir(char *out, size_t cap);

/* A data file shipped in the source tree, given relative to the repository
 * root: looked up where an installed library keeps it (LIB/../share/vclip,
 * the Python package's LIB/vclip-data), next to the running binary (BIN/..,
 * BIN/../..) and in the source folder it was built from.  malloc'd, NULL if
 * not found. */
char *data_path(const char *relative);

#endif
