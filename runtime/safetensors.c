/* safetensors.c — header (u64 length + JSON, padded to 8 bytes) then the raw
 * little-endian tensor data in order; see safetensors.h. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "safetensors.h"

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
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) { snprintf(err, cap, "%s: %s", path, strerror(errno)); free(js); return -1; }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(js, 1, jl, f) == jl;
    for (size_t i = jl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < n; i++)
        ok = !tensors[i].tensor->nbytes || fwrite(tensors[i].tensor->data, 1, tensors[i].tensor->nbytes, f) == tensors[i].tensor->nbytes;
    free(js);
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, cap, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
