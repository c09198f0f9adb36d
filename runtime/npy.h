/* npy.h — NumPy .npy files in and out (format versions 1-3, C order). */
#ifndef VCLIP_NPY_H
#define VCLIP_NPY_H

#include "../ir/ir.h"

/* Returns a tensor, or NULL with a message naming the file in err. */
Tensor *npy_load(const char *path, char *err, size_t cap);
/* Writes atomically (temporary file + rename). 0 or -1 with a message. */
int npy_save(const char *path, const Tensor *t, char *err, size_t cap);

#endif
