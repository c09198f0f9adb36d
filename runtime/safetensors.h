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

#endif
