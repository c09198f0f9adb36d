/* npy.c — reading and writing NumPy .npy files.  The header is parsed
 * strictly (descr, fortran_order, shape) and the payload size is checked
 * against the file size before anything is allocated. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "npy.h"
#include "../ir/base.h"

static const struct { const char *descr; DType t; } descrs[] = {
    {"<f4", DT_F32}, {"<f8", DT_F64}, {"<f2", DT_F16}, {"<i8", DT_I64}, {"<i4", DT_I32},
    {"|i1", DT_I8}, {"|u1", DT_U8}, {"|b1", DT_BOOL}, {"<u2", DT_BF16},
};

static const char *skip_ws(const char *p) { while (*p == ' ') p++; return p; }

Tensor *npy_load(const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    Tensor *t = NULL;
    char *hdr = NULL;
    if (!f) { snprintf(err, cap, "%s: %s", path, strerror(errno)); return NULL; }
    unsigned char pre[12];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        snprintf(err, cap, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    size_t hlen, pre_len = 10;
    if (pre[6] == 1) hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
    else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) { snprintf(err, cap, "%s: truncated header", path); goto done; }
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)pre[10] << 16) | ((size_t)pre[11] << 24);
        pre_len = 12;
    } else { snprintf(err, cap, "%s: unsupported .npy version %d", path, pre[6]); goto done; }
    if (hlen > (1 << 20)) { snprintf(err, cap, "%s: header too large", path); goto done; }
    hdr = malloc(hlen + 1);
    if (!hdr || fread(hdr, 1, hlen, f) != hlen) { snprintf(err, cap, "%s: truncated header", path); goto done; }
    hdr[hlen] = 0;
    const char *d = strstr(hdr, "'descr':"), *fo = strstr(hdr, "'fortran_order':"), *sh = strstr(hdr, "'shape':");
    if (!d || !fo || !sh) { snprintf(err, cap, "%s: malformed header", path); goto done; }
    d = skip_ws(d + 8);
    DType dt = DT_UNDEF;
    for (size_t i = 0; i < sizeof descrs / sizeof *descrs; i++)
        if (d[0] == '\'' && strncmp(d + 1, descrs[i].descr, 3) == 0 && d[4] == '\'') dt = descrs[i].t;
    if (dt == DT_UNDEF) {
        snprintf(err, cap, "%s: unsupported dtype %.8s (supported: f4 f8 f2 i8 i4 i1 u1 b1, little-endian)", path, d);
        goto done;
    }
    if (strncmp(skip_ws(fo + 16), "False", 5) != 0) { snprintf(err, cap, "%s: Fortran-order arrays are not supported", path); goto done; }
    const char *p = skip_ws(sh + 8);
    if (*p != '(') { snprintf(err, cap, "%s: malformed shape", path); goto done; }
    p++;
    int rank = 0;
    int64_t dims[IR_MAX_RANK];
    for (;;) {
        p = skip_ws(p);
        if (*p == ')') break;
        if (rank == IR_MAX_RANK) { snprintf(err, cap, "%s: rank above %d", path, IR_MAX_RANK); goto done; }
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || errno) { snprintf(err, cap, "%s: malformed shape", path); goto done; }
        dims[rank++] = v;
        p = skip_ws(end);
        if (*p == ',') p++;
        else if (*p != ')') { snprintf(err, cap, "%s: malformed shape", path); goto done; }
    }
    int64_t numel = dims_numel_checked(rank, dims);
    size_t bytes;
    if (numel < 0 || __builtin_mul_overflow((size_t)numel, dtype_size(dt), &bytes)) {
        snprintf(err, cap, "%s: shape too large", path);
        goto done;
    }
    long here = ftell(f);
    if (fseek(f, 0, SEEK_END) || here < 0) { snprintf(err, cap, "%s: cannot seek", path); goto done; }
    long total = ftell(f);
    if (total < 0 || (size_t)(total - here) < bytes) {
        snprintf(err, cap, "%s: truncated: %zu data bytes expected, %ld present", path, bytes, total - here);
        goto done;
    }
    (void)pre_len;
    fseek(f, here, SEEK_SET);
    t = tensor_new(dt, rank, dims);
    if (!t) { snprintf(err, cap, "%s: cannot allocate %zu bytes", path, bytes); goto done; }
    if (bytes && fread(t->data, 1, bytes, f) != bytes) {
        snprintf(err, cap, "%s: read error", path);
        tensor_free(t);
        t = NULL;
    }
done:
    free(hdr);
    fclose(f);
    return t;
}

int npy_save(const char *path, const Tensor *t, char *err, size_t cap)
{
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof descrs / sizeof *descrs; i++)
        if (descrs[i].t == t->dtype) descr = descrs[i].descr;
    if (!descr) { snprintf(err, cap, "%s: cannot store dtype %s", path, dtype_name(t->dtype)); return -1; }
    char shape[256] = "", hdr[512];
    size_t len = 0;
    for (int i = 0; i < t->rank; i++)
        len += (size_t)snprintf(shape + len, sizeof shape - len, "%lld,%s", (long long)t->dims[i], i + 1 < t->rank ? " " : "");
    if (t->rank > 1) shape[len - 1] = 0; /* numpy writes (2, 3) but (5,) */
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    memset(hdr + n, ' ', (size_t)pad);
    hdr[n + pad] = '\n';
    int hlen = n + pad + 1;
    AtomicFile af;
    if (atomic_open(&af, path, "wb", err, cap)) return -1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
    if (fwrite(pre, 1, 10, af.f) != 10 || fwrite(hdr, 1, (size_t)hlen, af.f) != (size_t)hlen ||
        (t->nbytes && fwrite(t->data, 1, t->nbytes, af.f) != t->nbytes)) {
        snprintf(err, cap, "cannot write %s: %s", path, strerror(errno));
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, err, cap);
}
