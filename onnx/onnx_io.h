/* onnx_io.h — ONNX <-> IR.  The schema is Debian's onnx.proto, compiled by
 * protoc-c at build time into build/gen/onnx.pb-c.{c,h}. */
#ifndef VCLIP_ONNX_IO_H
#define VCLIP_ONNX_IO_H

#include "../ir/ir.h"

/* Loads and validates a model; runs shape inference.  NULL with a message
 * that names the file and, where it applies, the node or tensor. */
Graph *onnx_load(const char *path, char *err, size_t cap);
/* Same, from bytes in memory (external data resolved against base_dir, or
 * refused when base_dir is NULL). */
Graph *onnx_load_bytes(const void *data, size_t len, const char *name, const char *base_dir,
                       char *err, size_t cap);

typedef struct {
    int external_data;          /* 1: always, 0: never, -1: when over 1 GiB */
    const char *producer;       /* producer_name to record */
} OnnxSaveOptions;

/* Writes atomically: OUT.tmp then rename; external data goes to OUT.data. */
int onnx_save(const Graph *g, const char *path, const OnnxSaveOptions *opt, char *err, size_t cap);

/* Resolves an external-data location against the model folder, refusing
 * absolute paths, '..' components and symlinks that leave the folder.
 * Returns a malloc'd path or NULL with a message. */
char *external_data_path(const char *base_dir, const char *location, char *err, size_t cap);

#endif
