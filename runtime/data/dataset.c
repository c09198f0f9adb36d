/* dataset.c — see dataset.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dataset.h"

int dataset_load_csv(const char *csv, const char *root, Dataset *ds, char *err, size_t cap)
{
    memset(ds, 0, sizeof *ds);
    FILE *f = fopen(csv, "r");
    if (!f) { snprintf(err, cap, "%s: %s", csv, strerror(errno)); return -1; }
    char line[8192];
    int lineno = 0, rc = 0;
    size_t capn = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        size_t l = strcspn(line, "\r\n");
        line[l] = 0;
        if (!l || (lineno == 1 && !strncmp(line, "path,", 5))) continue;
        char *comma = strrchr(line, ',');
        char *end = NULL;
        long label = comma ? strtol(comma + 1, &end, 10) : 0;
        if (!comma || comma == line || end == comma + 1 || *end || label < 0 || label > 1000000) {
            snprintf(err, cap, "%s:%d: expected 'relative/path,label_index'", csv, lineno);
            rc = -1;
            break;
        }
        *comma = 0;
        if (ds->n == capn) {
            capn = capn ? capn * 2 : 256;
            DatasetItem *p = realloc(ds->items, capn * sizeof *p);
            if (!p) { snprintf(err, cap, "out of memory"); rc = -1; break; }
            ds->items = p;
        }
        size_t plen = strlen(root) + strlen(line) + 2;
        char *path = malloc(plen);
        if (!path) { snprintf(err, cap, "out of memory"); rc = -1; break; }
        snprintf(path, plen, "%s/%s", root, line);
        ds->items[ds->n++] = (DatasetItem){path, (int)label};
    }
    fclose(f);
    if (!rc && !ds->n) { snprintf(err, cap, "%s: no videos listed", csv); rc = -1; }
    if (rc) dataset_free(ds);
    return rc;
}

void dataset_free(Dataset *ds)
{
    for (size_t i = 0; i < ds->n; i++) free(ds->items[i].path);
    free(ds->items);
    memset(ds, 0, sizeof *ds);
}
