/* prompts.c — see prompts.h.  CamelCase splitting puts a space where a lower
 * case letter or digit meets an upper case letter, and inside runs of
 * capitals before the last one ("HTTPServer" -> "HTTP Server"); on UCF-101
 * it reproduces the released index-to-class names except "YoYo", which the
 * released list spells "Yoyo". */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "prompts.h"

static const char *const prefixes[4] = {"a photo of", "a video of", "a example of", "a demonstration of"};
static const char *const forms[7] = {"{}", "a person {}", "a person using {}", "a person doing {}",
                                     "a person during {}", "a person performing {}", "a person practicing {}"};

void string_list_free(StringList *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static int append(StringList *l, const char *s, size_t len)
{
    char **p = realloc(l->items, sizeof(char *) * (l->n + 1));
    if (!p) return -1;
    l->items = p;
    if (!(p[l->n] = strndup(s, len))) return -1;
    l->n++;
    return 0;
}

void prompts_default_templates(StringList *out)
{
    memset(out, 0, sizeof *out);
    for (int p = 0; p < 4; p++)
        for (int f = 0; f < 7; f++) {
            char buf[128];
            int n = snprintf(buf, sizeof buf, "%s %s.", prefixes[p], forms[f]);
            append(out, buf, (size_t)n);
        }
}

static char *slurp(const char *path, size_t *len, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, cap, "%s: %s", path, strerror(errno)); return NULL; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 && n < (64L << 20) ? malloc((size_t)n + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        snprintf(err, cap, "%s: %s", path, buf ? "read error" : "too large or unreadable");
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

/* Non-empty lines, trimmed of '\r' and surrounding spaces; line numbers for messages. */
typedef int (*LineFn)(const char *line, size_t len, int lineno, void *ctx, char *err, size_t cap);

static int each_line(const char *buf, size_t len, LineFn fn, void *ctx, char *err, size_t cap)
{
    int lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len, a = pos, b = end;
        lineno++;
        while (a < b && (buf[a] == ' ' || buf[a] == '\t')) a++;
        while (b > a && (buf[b - 1] == '\r' || buf[b - 1] == ' ' || buf[b - 1] == '\t')) b--;
        if (b > a && fn(buf + a, b - a, lineno, ctx, err, cap)) return -1;
        pos = end + 1;
    }
    return 0;
}

typedef struct { StringList *out; const char *path; } LineCtx;

static int template_line(const char *line, size_t len, int lineno, void *vctx, char *err, size_t cap)
{
    LineCtx *c = vctx;
    const char *first = memmem(line, len, "{}", 2);
    if (!first || memmem(first + 2, len - (size_t)(first + 2 - line), "{}", 2)) {
        snprintf(err, cap, "%s:%d: a template needs exactly one {}", c->path, lineno);
        return -1;
    }
    return append(c->out, line, len) ? (snprintf(err, cap, "out of memory"), -1) : 0;
}

int prompts_load_templates(const char *path, StringList *out, char *err, size_t cap)
{
    size_t len;
    memset(out, 0, sizeof *out);
    char *buf = slurp(path, &len, err, cap);
    if (!buf) return -1;
    LineCtx c = {out, path};
    int rc = each_line(buf, len, template_line, &c, err, cap);
    free(buf);
    if (!rc && !out->n) { snprintf(err, cap, "%s: no templates", path); rc = -1; }
    if (rc) string_list_free(out);
    return rc;
}

static int class_line(const char *line, size_t len, int lineno, void *vctx, char *err, size_t cap)
{
    (void)lineno;
    LineCtx *c = vctx;
    return append(c->out, line, len) ? (snprintf(err, cap, "out of memory"), -1) : 0;
}

static int load_json_classes(const char *path, const char *buf, size_t len, StringList *out, char *err, size_t cap)
{
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) { snprintf(err, cap, "%s:%d:%d: %s", path, je.line, je.column, je.text); return -1; }
    if (!json_is_object(root) || !json_object_size(root)) {
        snprintf(err, cap, "%s: expected an object {\"0\": \"class name\", ...}", path);
        json_decref(root);
        return -1;
    }
    size_t n = json_object_size(root);
    out->items = calloc(n, sizeof(char *));
    out->n = n;
    const char *key;
    json_t *val;
    int rc = out->items ? 0 : -1;
    json_object_foreach(root, key, val) {
        if (rc) break;
        char *end;
        errno = 0;
        long idx = strtol(key, &end, 10);
        if (!*key || *end || errno || idx < 0 || (size_t)idx >= n) {
            snprintf(err, cap, "%s: key \"%s\" is not an index in 0..%zu", path, key, n - 1);
            rc = -1;
        } else if (!json_is_string(val)) {
            snprintf(err, cap, "%s: class %ld is not a string", path, idx);
            rc = -1;
        } else if (out->items[idx]) {
            snprintf(err, cap, "%s: index %ld appears twice", path, idx);
            rc = -1;
        } else if (!(out->items[idx] = strdup(json_string_value(val)))) rc = -1;
    }
    json_decref(root);
    if (rc) string_list_free(out);
    return rc;
}

int prompts_load_classes(const char *path, StringList *out, char *err, size_t cap)
{
    size_t len;
    memset(out, 0, sizeof *out);
    char *buf = slurp(path, &len, err, cap);
    if (!buf) return -1;
    size_t i = 0;
    while (i < len && isspace((unsigned char)buf[i])) i++;
    int rc;
    if (i < len && buf[i] == '{') rc = load_json_classes(path, buf, len, out, err, cap);
    else {
        LineCtx c = {out, path};
        rc = each_line(buf, len, class_line, &c, err, cap);
        if (!rc && !out->n) { snprintf(err, cap, "%s: no class names", path); rc = -1; }
        if (rc) string_list_free(out);
    }
    free(buf);
    return rc;
}

char *prompts_normalize_class(const char *name)
{
    size_t n = strlen(name);
    char *out = malloc(2 * n + 1), *o = out;
    if (!out) return NULL;
    int has_space = strchr(name, ' ') != NULL;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '_') { *o++ = ' '; continue; }
        if (!has_space && i > 0 && isupper((unsigned char)c)) {
            char p = name[i - 1], nx = i + 1 < n ? name[i + 1] : 0;
            if (islower((unsigned char)p) || isdigit((unsigned char)p) ||
                (isupper((unsigned char)p) && islower((unsigned char)nx)))
                *o++ = ' ';
        }
        *o++ = c;
    }
    *o = 0;
    return out;
}

char *prompts_fill(const char *template_, const char *name)
{
    const char *at = strstr(template_, "{}");
    size_t tl = strlen(template_), nl = strlen(name);
    char *out = malloc(tl + nl + 1);
    if (!out) return NULL;
    if (!at) { memcpy(out, template_, tl + 1); return out; }
    size_t a = (size_t)(at - template_);
    memcpy(out, template_, a);
    memcpy(out + a, name, nl);
    memcpy(out + a + nl, at + 2, tl - a - 2 + 1);
    return out;
}
