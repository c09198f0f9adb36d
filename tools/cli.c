/* cli.c — see cli.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

void cli_error(const char *tool, const char *prefix, const char *msg)
{
    fprintf(stderr, "%s: %s%s", tool, prefix ? prefix : "", prefix ? ": " : "");
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) fprintf(stderr, "\\x%02x", *p);
        else fputc(*p, stderr);
    }
    fputc('\n', stderr);
}

int cli_parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

char *cli_data_path(const char *relative)
{
    char exe[PATH_MAX], cand[PATH_MAX * 2];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0; /* the binary's folder */
        const char *ups[] = {"..", "../.."};
        for (size_t i = 0; slash && i < 2; i++) {
            snprintf(cand, sizeof cand, "%s/%s/%s", exe, ups[i], relative);
            if (access(cand, R_OK) == 0) return strdup(cand);
        }
    }
#ifdef VCLIP_DATA_DIR
    snprintf(cand, sizeof cand, "%s/%s", VCLIP_DATA_DIR, relative);
    if (access(cand, R_OK) == 0) return strdup(cand);
#endif
    return NULL;
}

char *cli_read_file(const char *path, size_t *len, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, cap, "%s: %s", path, strerror(errno)); return NULL; }
    size_t n = 0, c = 1 << 16;
    char *buf = malloc(c);
    size_t r;
    while (buf && (r = fread(buf + n, 1, c - n - 1, f)) > 0) {
        n += r;
        if (c - n < 4096) {
            char *nb = realloc(buf, c * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            c *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) { snprintf(err, cap, "%s: %s", path, buf ? "read error" : "out of memory"); free(buf); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

int cli_usage_error(const char *tool, const char *msg)
{
    fprintf(stderr, "%s: %s\n", tool, msg);
    return 2;
}
