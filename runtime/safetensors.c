/* safetensors.c — header (u64 length + JSON, padded to 8 bytes) then the raw
 * little-endian tensor data in order; see safetensors.h.  Files are
 * untrusted when read: every length and offset is checked. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "safetensors.h"
#include "../ir/base.h"

static const char *st_dtype(DType t)
{
    switch (t) {
    case DT_F32: return "F32";
    case DT_F16: return "F16";
    case DT_BF16: return "BF16";
    case DT_F64: return "F64";
    case DT_I64: return "I64";
    case DT_I32: return "I32";
    case DT_I8: return "I8";
    case DT_U8: return "U8";
    case DT_BOOL: return "BOOL";
    default: return NULL;
    }
}

int safetensors_save(const char *path, const NamedTensor *tensors, int n, const MetadataEntry *meta, int n_meta,
                     char *err, size_t cap)
{
    json_t *hdr = json_object(), *md = json_object();
    size_t off = 0;
    for (int i = 0; i < n_meta; i++) json_object_set_new(md, meta[i].key, json_string(meta[i].value));
    if (n_meta) json_object_set(hdr, "__metadata__", md);
    json_decref(md);
    for (int i = 0; i < n; i++) {
        const Tensor *t = tensors[i].tensor;
        const char *dt = st_dtype(t->dtype);
        if (!dt) { snprintf(err, cap, "%s: cannot store dtype %s", path, dtype_name(t->dtype)); json_decref(hdr); return -1; }
        json_t *shape = json_array();
        for (int d = 0; d < t->rank; d++) json_array_append_new(shape, json_integer(t->dims[d]));
        json_object_set_new(hdr, tensors[i].name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", dt, "shape", shape, "data_offsets",
                                      (json_int_t)off, (json_int_t)(off + t->nbytes)));
        off += t->nbytes;
    }
    char *js = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(hdr);
    if (!js) { snprintf(err, cap, "%s: out of memory", path); return -1; }
    size_t jl = strlen(js), padded = (jl + 7) & ~(size_t)7;
    AtomicFile af;
    if (atomic_open(&af, path, "wb", err, cap)) { free(js); return -1; }
    FILE *f = af.f;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(js, 1, jl, f) == jl;
    for (size_t i = jl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < n; i++)
        ok = !tensors[i].tensor->nbytes || fwrite(tensors[i].tensor->data, 1, tensors[i].tensor->nbytes, f) == tensors[i].tensor->nbytes;
    free(js);
    if (!ok) {
        snprintf(err, cap, "cannot write %s: %s", path, strerror(errno));
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, err, cap);
}

static DType from_st_dtype(const char *s)
{
    static const DType all[] = {DT_F32, DT_F16, DT_BF16, DT_F64, DT_I64, DT_I32, DT_I8, DT_U8, DT_BOOL};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (!strcmp(st_dtype(all[i]), s)) return all[i];
    return DT_UNDEF;
}

typedef struct { uint64_t begin, end; const char *name; } Span;

static int by_begin(const void *a, const void *b)
{
    const Span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* Every entry of a header, before anything is allocated from it: a known
 * dtype, at most IR_MAX_RANK non-negative dims whose byte count fits, data
 * offsets [begin, end) inside the data region and exactly that long, and no
 * two tensors sharing bytes.  0, or -1 with a message naming the tensor. */
static int check_entries(json_t *root, uint64_t data_len, const char *path, char *err, size_t cap)
{
    size_t n = json_object_size(root), k = 0;
    Span *spans = calloc(n + 1, sizeof *spans);
    if (!spans) { snprintf(err, cap, "%s: out of memory", path); return -1; }
    const char *name;
    json_t *e;
    int rc = 0;
    json_object_foreach(root, name, e) {
        if (!strcmp(name, "__metadata__")) {
            if (!json_is_object(e)) { snprintf(err, cap, "%s: __metadata__ is not an object", path); rc = -1; break; }
            continue;
        }
        json_t *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape"), *off = json_object_get(e, "data_offsets");
        DType d = json_is_string(dt) ? from_st_dtype(json_string_value(dt)) : DT_UNDEF;
        if (!json_is_object(e) || d == DT_UNDEF || !json_is_array(sh) || json_array_size(sh) > IR_MAX_RANK || !json_is_array(off) ||
            json_array_size(off) != 2 || !json_is_integer(json_array_get(off, 0)) || !json_is_integer(json_array_get(off, 1))) {
            snprintf(err, cap, "%s: tensor '%.200s' has a bad dtype, shape or data_offsets", path, name);
            rc = -1;
            break;
        }
        uint64_t bytes = dtype_size(d);
        for (size_t i = 0; rc == 0 && i < json_array_size(sh); i++) {
            json_t *di = json_array_get(sh, i);
            json_int_t v = json_integer_value(di);
            if (!json_is_integer(di) || v < 0 || (v > 0 && bytes > (uint64_t)INT64_MAX / (uint64_t)v)) {
                snprintf(err, cap, "%s: tensor '%.200s' has a bad dimension", path, name);
                rc = -1;
            }
            bytes *= (uint64_t)v;
        }
        if (rc) break;
        json_int_t a = json_integer_value(json_array_get(off, 0)), b = json_integer_value(json_array_get(off, 1));
        if (a < 0 || b < a || (uint64_t)b > data_len || (uint64_t)(b - a) != bytes) {
            snprintf(err, cap, "%s: tensor '%.200s': its shape needs %llu bytes, its data_offsets [%lld, %lld) give %s (the data is %llu bytes)",
                     path, name, (unsigned long long)bytes, (long long)a, (long long)b,
                     b < a || a < 0 ? "a negative range" : (uint64_t)b > data_len ? "a range past the end" : "another size",
                     (unsigned long long)data_len);
            rc = -1;
            break;
        }
        if (b > a) spans[k++] = (Span){(uint64_t)a, (uint64_t)b, name}; /* empty tensors own no bytes */
    }
    if (rc == 0) {
        qsort(spans, k, sizeof *spans, by_begin);
        for (size_t i = 1; i < k; i++)
            if (spans[i].begin < spans[i - 1].end) {
                snprintf(err, cap, "%s: tensors '%.200s' and '%.200s' overlap in the data", path, spans[i - 1].name, spans[i].name);
                rc = -1;
                break;
            }
    }
    free(spans);
    return rc;
}

/* Opens path and parses its JSON header (bounds checked); the caller closes *fp. */
static json_t *read_header(const char *path, FILE **fp, long *fsize, uint64_t *hl, char *err, size_t cap)
{
    *fp = fopen(path, "rb");
    if (!*fp) { snprintf(err, cap, "%s: %s", path, strerror(errno)); return NULL; }
    FILE *f = *fp;
    unsigned char len8[8];
    json_t *root = NULL;
    fseek(f, 0, SEEK_END);
    *fsize = ftell(f);
    fseek(f, 0, SEEK_SET);
    *hl = 0;
    if (fread(len8, 1, 8, f) != 8) { snprintf(err, cap, "%s: not a safetensors file (too short)", path); return NULL; }
    for (int i = 0; i < 8; i++) *hl |= (uint64_t)len8[i] << (8 * i);
    if (*hl > (100u << 20) || (long)(8 + *hl) > *fsize) { snprintf(err, cap, "%s: bad header length %llu", path, (unsigned long long)*hl); return NULL; }
    char *hdr = malloc(*hl + 1);
    if (!hdr || fread(hdr, 1, *hl, f) != *hl) { free(hdr); snprintf(err, cap, "%s: cannot read the header", path); return NULL; }
    json_error_t je;
    root = json_loadb(hdr, *hl, 0, &je);
    free(hdr);
    if (!root || !json_is_object(root)) {
        snprintf(err, cap, "%s: header is not a JSON object (%s)", path, root ? "" : je.text);
        json_decref(root);
        return NULL;
    }
    if (check_entries(root, (uint64_t)*fsize - 8 - *hl, path, err, cap)) {
        json_decref(root);
        return NULL;
    }
    return root;
}

int safetensors_names(const char *path, char ***names, int *n, char *err, size_t cap)
{
    FILE *f = NULL;
    long fsize;
    uint64_t hl;
    json_t *root = read_header(path, &f, &fsize, &hl, err, cap);
    if (f) fclose(f);
    *names = NULL;
    *n = 0;
    if (!root) return -1;
    *names = calloc(json_object_size(root) + 1, sizeof(char *));
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (!strcmp(k, "__metadata__")) continue;
        if (!*names || !((*names)[*n] = strdup(k))) { json_decref(root); snprintf(err, cap, "out of memory"); return -1; }
        (*n)++;
    }
    json_decref(root);
    return 0;
}

Tensor *safetensors_load(const char *path, const char *name, const char *meta_key, char **meta_value, char *err, size_t cap)
{
    if (meta_value) *meta_value = NULL;
    FILE *f = NULL;
    long fsize;
    uint64_t hl;
    Tensor *t = NULL;
    json_t *root = read_header(path, &f, &fsize, &hl, err, cap);
    if (!root) goto done;
    json_t *md = json_object_get(root, "__metadata__"), *mv = md && meta_key ? json_object_get(md, meta_key) : NULL;
    if (meta_value && json_is_string(mv)) *meta_value = strdup(json_string_value(mv));
    json_t *e = json_object_get(root, name), *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape");
    json_t *off = json_object_get(e, "data_offsets");
    if (!json_is_object(e)) { snprintf(err, cap, "%s: no tensor named '%s'", path, name); goto done; }
    DType d = json_is_string(dt) ? from_st_dtype(json_string_value(dt)) : DT_UNDEF;
    if (d == DT_UNDEF || !json_is_array(sh) || json_array_size(sh) > IR_MAX_RANK || !json_is_array(off) || json_array_size(off) != 2) {
        snprintf(err, cap, "%s: tensor '%s' has a bad dtype, shape or offsets", path, name);
        goto done;
    }
    int64_t dims[IR_MAX_RANK];
    for (size_t i = 0; i < json_array_size(sh); i++) dims[i] = json_integer_value(json_array_get(sh, i));
    json_int_t a = json_integer_value(json_array_get(off, 0)), b = json_integer_value(json_array_get(off, 1));
    t = tensor_new(d, (int)json_array_size(sh), dims);
    if (!t || a < 0 || b < a || (size_t)(b - a) != t->nbytes || (long)(8 + hl) + b > fsize) {
        snprintf(err, cap, "%s: tensor '%s': shape and data offsets disagree or run past the file", path, name);
        tensor_free(t);
        t = NULL;
        goto done;
    }
    if (fseek(f, (long)(8 + hl) + (long)a, SEEK_SET) || (t->nbytes && fread(t->data, 1, t->nbytes, f) != t->nbytes)) {
        snprintf(err, cap, "%s: read error", path);
        tensor_free(t);
        t = NULL;
    }
done:
    if (!t && meta_value) { free(*meta_value); *meta_value = NULL; }
    json_decref(root);
    if (f) fclose(f);
    return t;
}
