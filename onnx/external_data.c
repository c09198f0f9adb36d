/* external_data.c — resolving ONNX external-data locations safely: a model
 * may only reference files inside its own folder. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "onnx_io.h"

char *external_data_path(const char *base_dir, const char *location, char *err, size_t cap)
{
    if (!location || !*location) { snprintf(err, cap, "external data location is empty"); return NULL; }
    if (location[0] == '/' || location[0] == '\\') {
        snprintf(err, cap, "external data location '%s' is absolute; it must be relative to the model's folder", location);
        return NULL;
    }
    for (const char *p = location; *p;) {
        const char *e = p;
        while (*e && *e != '/' && *e != '\\') e++;
        if (e - p == 2 && p[0] == '.' && p[1] == '.') {
            snprintf(err, cap, "external data location '%s' leaves the model's folder ('..')", location);
            return NULL;
        }
        p = *e ? e + 1 : e;
    }
    char joined[PATH_MAX], real_base[PATH_MAX], real_file[PATH_MAX];
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", base_dir, location) >= sizeof joined) {
        snprintf(err, cap, "external data path too long");
        return NULL;
    }
    if (!realpath(base_dir, real_base)) { snprintf(err, cap, "%s: %s", base_dir, strerror(errno)); return NULL; }
    if (!realpath(joined, real_file)) {
        snprintf(err, cap, "external data '%s': %s", joined, strerror(errno));
        return NULL;
    }
    size_t bl = strlen(real_base);
    if (strncmp(real_file, real_base, bl) != 0 || (real_file[bl] != '/' && strcmp(real_base, "/") != 0)) {
        snprintf(err, cap, "external data '%s' resolves outside the model's folder (symlink?)", location);
        return NULL;
    }
    return strdup(real_file);
}
