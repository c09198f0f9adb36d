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

int cli_usage_error(const char *tool, const char *msg)
{
    fprintf(stderr, "%s: %s\n", tool, msg);
    return 2;
}

int cli_compile_option(int code, const char *arg, CompileOptions *co, char *err, size_t cap)
{
    if (code == CLI_OPT_TARGET && target_parse(arg, &co->target)) { snprintf(err, cap, "--target is cpu or cuda"); return -1; }
    if (code == CLI_OPT_PRECISION && precision_parse(arg, &co->precision)) { snprintf(err, cap, "--precision is fp32, bf16 or fp16"); return -1; }
    return compile_check(co, err, cap);
}
