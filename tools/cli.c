/* cli.c — see cli.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

void cli_error(const char *tool, const char *prefix, const char *msg)
{
    /* built whole and written at once: the ranks of an mpirun job share one
     * stderr, and a line written in pieces would interleave with theirs */
    size_t cap = strlen(tool) + (prefix ? strlen(prefix) : 0) + 4 * strlen(msg) + 8, n;
    char *line = malloc(cap);
    if (!line) { fprintf(stderr, "%s: %s\n", tool, msg); return; }
    n = (size_t)snprintf(line, cap, "%s: %s%s", tool, prefix ? prefix : "", prefix ? ": " : "");
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) n += (size_t)snprintf(line + n, cap - n, "\\x%02x", *p);
        else line[n++] = (char)*p;
    }
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
    free(line);
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

int cli_usage_error(const char *tool, const char *msg)
{
    fprintf(stderr, "%s: %s\n", tool, msg);
    return 2;
}

int cli_compile_arg(const char *tool, int code, const char *arg, CompileOptions *co)
{
    char err[256];
    if (code == CLI_OPT_TARGET && target_parse(arg, &co->target)) snprintf(err, sizeof err, "--target is cpu or cuda");
    else if (code == CLI_OPT_PRECISION && precision_parse(arg, &co->precision)) snprintf(err, sizeof err, "--precision is auto, fp32, bf16 or fp16");
    else if (compile_check(co, err, sizeof err) == 0) return 0;
    return cli_usage_error(tool, err);
}

Comm *cli_comm_open(const char *tool, double timeout_s, Target target, char *name, size_t cap)
{
    char err[1024];
    snprintf(name, cap, "%s", tool);
    Comm *c = comm_open(COMM_AUTO, timeout_s, err, sizeof err);
    if (!c) { cli_error(tool, NULL, err); return NULL; }
    if (comm_size(c) > 1) snprintf(name, cap, "%s [rank %d of %d]", tool, comm_rank(c), comm_size(c));
    if (comm_rank(c) && !freopen("/dev/null", "w", stdout)) {
        cli_error(name, NULL, "cannot silence stdout");
        comm_close(c, 1);
        return NULL;
    }
    if (model_select_device(target, comm_local_rank(c), err, sizeof err)) {
        cli_error(name, NULL, err);
        comm_close(c, 1);
        return NULL;
    }
    return c;
}
