/* name_map.c — FNV-1a hashed open-addressing map; see name_map.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "name_map.h"
#include "base.h"

static size_t hash(const char *s) { return (size_t)fnv1a_str(FNV_OFFSET, s); }

static int rehash(NameMap *m, size_t cap)
{
    NameMapSlot *s = calloc(cap, sizeof *s);
    if (!s) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key) continue;
        size_t j = hash(m->slots[i].key) & (cap - 1);
        while (s[j].key) j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->cap = cap;
    return 0;
}

int name_map_put(NameMap *m, const char *key, void *val)
{
    if ((m->len + 1) * 2 > m->cap && rehash(m, m->cap ? m->cap * 2 : 64)) return -1;
    size_t j = hash(key) & (m->cap - 1);
    while (m->slots[j].key && strcmp(m->slots[j].key, key) != 0) j = (j + 1) & (m->cap - 1);
    if (!m->slots[j].key) m->len++;
    m->slots[j].key = key;
    m->slots[j].val = val;
    return 0;
}

void *name_map_get(const NameMap *m, const char *key)
{
    if (!m->cap) return NULL;
    size_t j = hash(key) & (m->cap - 1);
    while (m->slots[j].key) {
        if (strcmp(m->slots[j].key, key) == 0) return m->slots[j].val;
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

void name_map_free(NameMap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}
