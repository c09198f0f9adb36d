/* name_map.h — string -> pointer hash map (open addressing), for resolving
 * value names during import without quadratic lookups. Keys are borrowed. */
#ifndef VCLIP_NAME_MAP_H
#define VCLIP_NAME_MAP_H

#include <stddef.h>

typedef struct { const char *key; void *val; } NameMapSlot;
typedef struct { NameMapSlot *slots; size_t cap, len; } NameMap;

int name_map_put(NameMap *m, const char *key, void *val); /* replaces; 0 or -1 (OOM) */
void *name_map_get(const NameMap *m, const char *key);
void name_map_free(NameMap *m);

#endif
