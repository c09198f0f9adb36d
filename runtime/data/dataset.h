/* dataset.h — video dataset lists in the released code's format. */
#ifndef VCLIP_DATASET_H
#define VCLIP_DATASET_H

#include <stddef.h>

typedef struct { char *path; int label; } DatasetItem;
typedef struct { DatasetItem *items; size_t n; } Dataset;

/* CSV lines `relative/path,label_index` joined to root; a first line
 * starting with "path," is a header; a non-integer label is an error naming
 * the line.  0 or -1 with a message. */
int dataset_load_csv(const char *csv, const char *root, Dataset *ds, char *err, size_t cap);
void dataset_free(Dataset *ds);

#endif
