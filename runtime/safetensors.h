/* safetensors.h — writing tensors in the safetensors format (checkpoints,
 * class and caption features). */
#ifndef VCLIP_SAFETENSORS_H
#define VCLIP_SAFETENSORS_H

#include "../ir/ir.h"

typedef struct { const char *name; const Tensor *tensor; } NamedTensor;
typedef struct { const char *key, *value; } MetadataEntry;

/* Writes atomically (temporary file, fsync, rename).  0 or -1 with a message. */
int safetensors_save(const char *path, const NamedTensor *tensors, int n, const MetadataEntry *meta, int n_meta,
                     char *err, size_t cap);

/* Reads one tensor and (optionally) one metadata value of a safetensors file.
 * The header and offsets are checked against the file size.  NULL with a
 * message naming the file. *meta_value (malloc'd) is NULL if absent. */
Tensor *safetensors_load(const char *path, const char *name, const char *meta_key, char **meta_value, char *err, size_t cap);

/* The tensor names of a file, in header order (caller frees each and the
 * array).  0 or -1 with a message. */
int safetensors_names(const char *path, char ***names, int *n, char *err, size_t cap);

#endif
