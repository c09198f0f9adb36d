/* bpe.c — CLIP's byte-level BPE tokenizer (open_clip's SimpleTokenizer).
 *
 * Vocabulary from bpe_simple_vocab_16e6.txt.gz (open_clip's construction:
 * 256 byte symbols, the same with "</w>", the first 48,894 merges, then
 * <start_of_text> and <end_of_text>) or from Hugging Face vocab.json +
 * merges.txt.  Pre-tokenization is CLIP's pattern through PCRE2 with Unicode
 * properties; each piece is mapped through the byte-to-unicode table and
 * merged by rank, with a cache per piece.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <jansson.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "bpe.h"
#include "text_clean.h"
#include "../../ir/name_map.h"

#define N_MERGES (49152 - 256 - 2) /* open_clip: merges[1:49152-256-2+1] */

typedef struct { int32_t *ids; size_t n; } IdList;

struct ClipTokenizer {
    NameMap vocab;        /* token -> id + 1 */
    NameMap ranks;        /* "first second" -> rank + 1 */
    NameMap cache;        /* byte-encoded piece -> IdList* */
    char **strings;       /* keys owned by the maps */
    size_t n_strings, cap_strings;
    char byte_sym[256][4];/* bytes_to_unicode, as UTF-8 */
    char special[2][32];  /* start / end token text */
    int32_t sot, eot;
    pcre2_code *re;
    pcre2_match_data *md;
};

static char *keep(ClipTokenizer *t, const char *s, size_t len)
{
    if (t->n_strings == t->cap_strings) {
        size_t nc = t->cap_strings ? t->cap_strings * 2 : 1024;
        char **p = realloc(t->strings, nc * sizeof *p);
        if (!p) return NULL;
        t->strings = p;
        t->cap_strings = nc;
    }
    char *d = malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = 0;
    t->strings[t->n_strings++] = d;
    return d;
}

static void utf8_put(char *dst, unsigned cp)
{
    if (cp < 0x80) { dst[0] = (char)cp; dst[1] = 0; }
    else { dst[0] = (char)(0xC0 | (cp >> 6)); dst[1] = (char)(0x80 | (cp & 0x3F)); dst[2] = 0; }
}

/* bytes_to_unicode(), and the order open_clip lists its values in. */
static void byte_table(ClipTokenizer *t, int order[256])
{
    int n = 0, extra = 0, used[256] = {0};
    for (int b = '!'; b <= '~'; b++) order[n++] = b, used[b] = 1;
    for (int b = 0xA1; b <= 0xAC; b++) order[n++] = b, used[b] = 1;
    for (int b = 0xAE; b <= 0xFF; b++) order[n++] = b, used[b] = 1;
    for (int b = 0; b < 256; b++) if (used[b]) utf8_put(t->byte_sym[b], (unsigned)b);
    for (int b = 0; b < 256; b++)
        if (!used[b]) { order[n++] = b; utf8_put(t->byte_sym[b], (unsigned)(256 + extra++)); }
}

static int add_vocab(ClipTokenizer *t, const char *tok, int32_t id)
{
    char *k = keep(t, tok, strlen(tok));
    return (k && name_map_put(&t->vocab, k, (void *)(intptr_t)(id + 1)) == 0) ? 0 : -1;
}

static int add_merge(ClipTokenizer *t, const char *line, size_t len, int32_t rank)
{
    char *k = keep(t, line, len);
    return (k && name_map_put(&t->ranks, k, (void *)(intptr_t)(rank + 1)) == 0) ? 0 : -1;
}

static int32_t vocab_id(const ClipTokenizer *t, const char *tok)
{
    intptr_t v = (intptr_t)name_map_get(&t->vocab, tok);
    return v ? (int32_t)(v - 1) : -1;
}

static int compile_pattern(ClipTokenizer *t, char *err, size_t cap)
{
    char pat[512];
    snprintf(pat, sizeof pat, "\\Q%s\\E|\\Q%s\\E|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
             t->special[0], t->special[1]);
    int ec;
    PCRE2_SIZE off;
    t->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS | PCRE2_NO_UTF_CHECK,
                          &ec, &off, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(err, cap, "tokenizer pattern: %s", (char *)msg);
        return -1;
    }
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
    t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
    return t->md ? 0 : -1;
}

static ClipTokenizer *new_tokenizer(void)
{
    ClipTokenizer *t = calloc(1, sizeof *t);
    return t;
}

ClipTokenizer *clip_tokenizer_load_gz(const char *path, char *err, size_t cap)
{
    gzFile f = gzopen(path, "rb");
    if (!f) { snprintf(err, cap, "%s: %s", path, errno ? strerror(errno) : "cannot open"); return NULL; }
    size_t len = 0, bufcap = 1 << 21;
    char *buf = malloc(bufcap);
    int n;
    while (buf && (n = gzread(f, buf + len, (unsigned)(bufcap - len - 1))) > 0) {
        len += (size_t)n;
        if (bufcap - len < 65536) {
            char *nb = bufcap < (64u << 20) ? realloc(buf, bufcap * 2) : NULL;
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            bufcap *= 2;
        }
    }
    int gzerr;
    const char *gzmsg = gzerror(f, &gzerr);
    gzclose(f);
    if (!buf || gzerr < 0) {
        snprintf(err, cap, "%s: %s", path, buf ? gzmsg : "too large or out of memory");
        free(buf);
        return NULL;
    }
    buf[len] = 0;
    ClipTokenizer *t = new_tokenizer();
    int order[256];
    if (!t) { free(buf); snprintf(err, cap, "out of memory"); return NULL; }
    byte_table(t, order);
    int32_t id = 0;
    int ok = 1;
    for (int i = 0; i < 256; i++) ok &= add_vocab(t, t->byte_sym[order[i]], id++) == 0;
    for (int i = 0; i < 256; i++) {
        char w[16];
        snprintf(w, sizeof w, "%s</w>", t->byte_sym[order[i]]);
        ok &= add_vocab(t, w, id++) == 0;
    }
    /* merges: lines 1 .. N_MERGES (line 0 is the version header) */
    char *p = buf;
    int line = 0, rank = 0;
    while (ok && *p && rank < N_MERGES) {
        char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (line > 0) {
            char *sp = memchr(p, ' ', l);
            if (!sp || memchr(sp + 1, ' ', l - (size_t)(sp + 1 - p))) {
                snprintf(err, cap, "%s: line %d is not a merge ('first second')", path, line + 1);
                ok = 0;
                break;
            }
            ok &= add_merge(t, p, l, rank++) == 0;
            char joined[256];
            size_t a = (size_t)(sp - p), b = l - a - 1;
            if (a + b >= sizeof joined) { snprintf(err, cap, "%s: line %d too long", path, line + 1); ok = 0; break; }
            memcpy(joined, p, a);
            memcpy(joined + a, sp + 1, b);
            joined[a + b] = 0;
            ok &= add_vocab(t, joined, id++) == 0;
        }
        line++;
        p = e ? e + 1 : p + l;
    }
    free(buf);
    if (ok && rank < N_MERGES) { snprintf(err, cap, "%s: %d merges, expected %d", path, rank, N_MERGES); ok = 0; }
    strcpy(t->special[0], "<start_of_text>");
    strcpy(t->special[1], "<end_of_text>");
    t->sot = id;
    t->eot = id + 1;
    ok = ok && add_vocab(t, t->special[0], t->sot) == 0 && add_vocab(t, t->special[1], t->eot) == 0;
    if (!ok || compile_pattern(t, err, cap)) {
        if (ok) snprintf(err, cap, "%s: cannot build the tokenizer", path);
        clip_tokenizer_free(t);
        return NULL;
    }
    return t;
}

ClipTokenizer *clip_tokenizer_load_hf(const char *vocab_json, const char *merges_txt, char *err, size_t cap)
{
    json_error_t je;
    json_t *root = json_load_file(vocab_json, 0, &je);
    if (!root || !json_is_object(root)) {
        snprintf(err, cap, "%s:%d: %s", vocab_json, je.line, root ? "expected a JSON object of token -> id" : je.text);
        json_decref(root);
        return NULL;
    }
    ClipTokenizer *t = new_tokenizer();
    int order[256], ok = t != NULL;
    if (t) byte_table(t, order);
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!ok) break;
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) > INT32_MAX) {
            snprintf(err, cap, "%s: token '%.40s' has no valid id", vocab_json, key);
            ok = 0;
            break;
        }
        ok &= add_vocab(t, key, (int32_t)json_integer_value(val)) == 0;
    }
    json_decref(root);
    FILE *f = ok ? fopen(merges_txt, "r") : NULL;
    if (ok && !f) { snprintf(err, cap, "%s: %s", merges_txt, strerror(errno)); ok = 0; }
    char line[1024];
    int rank = 0, lineno = 0;
    while (ok && fgets(line, sizeof line, f)) {
        lineno++;
        size_t l = strcspn(line, "\r\n");
        line[l] = 0;
        if (lineno == 1 && strncmp(line, "#version", 8) == 0) continue;
        if (!l) continue;
        char *sp = strchr(line, ' ');
        if (!sp || strchr(sp + 1, ' ')) { snprintf(err, cap, "%s:%d: not a merge ('first second')", merges_txt, lineno); ok = 0; break; }
        ok &= add_merge(t, line, l, rank++) == 0;
    }
    if (f) fclose(f);
    if (ok) {
        strcpy(t->special[0], "<|startoftext|>");
        strcpy(t->special[1], "<|endoftext|>");
        t->sot = vocab_id(t, t->special[0]);
        t->eot = vocab_id(t, t->special[1]);
        if (t->sot < 0 || t->eot < 0) { snprintf(err, cap, "%s: no <|startoftext|> / <|endoftext|> tokens", vocab_json); ok = 0; }
    }
    if (!ok || compile_pattern(t, err, cap)) {
        clip_tokenizer_free(t);
        return NULL;
    }
    return t;
}

void clip_tokenizer_free(ClipTokenizer *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->cache.cap; i++) {
        IdList *l = t->cache.slots ? t->cache.slots[i].val : NULL;
        if (l) { free(l->ids); free(l); }
    }
    for (size_t i = 0; i < t->n_strings; i++) free(t->strings[i]);
    free(t->strings);
    name_map_free(&t->vocab);
    name_map_free(&t->ranks);
    name_map_free(&t->cache);
    if (t->md) pcre2_match_data_free(t->md);
    if (t->re) pcre2_code_free(t->re);
    free(t);
}

int32_t clip_tokenizer_sot(const ClipTokenizer *t) { return t->sot; }
int32_t clip_tokenizer_eot(const ClipTokenizer *t) { return t->eot; }

/* BPE on one byte-encoded piece; symbols are UTF-8 strings. */
static IdList *bpe_piece(ClipTokenizer *t, const char *piece)
{
    size_t plen = strlen(piece), n = 0;
    char **sym = calloc(plen + 1, sizeof *sym);
    IdList *res = calloc(1, sizeof *res);
    if (!sym || !res) goto oom;
    for (size_t i = 0; i < plen;) {
        size_t k = 1;
        while (i + k < plen && ((unsigned char)piece[i + k] & 0xC0) == 0x80) k++;
        int last = i + k >= plen;
        sym[n] = malloc(k + (last ? 5 : 1));
        if (!sym[n]) goto oom;
        memcpy(sym[n], piece + i, k);
        strcpy(sym[n] + k, last ? "</w>" : "");
        n++;
        i += k;
    }
    char key[512];
    while (n > 1) {
        intptr_t best = 0;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            if ((size_t)snprintf(key, sizeof key, "%s %s", sym[i], sym[i + 1]) >= sizeof key) continue;
            intptr_t r = (intptr_t)name_map_get(&t->ranks, key);
            if (r && (!best || r < best)) { best = r; at = i; }
        }
        if (!best) break;
        char *first = sym[at], *second = sym[at + 1];
        size_t fl = strlen(first), sl = strlen(second), w = 0;
        char *f = strdup(first), *s = strdup(second);
        if (!f || !s) { free(f); free(s); goto oom; }
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && strcmp(sym[i], f) == 0 && strcmp(sym[i + 1], s) == 0) {
                char *m = malloc(fl + sl + 1);
                if (!m) { free(f); free(s); goto oom; }
                memcpy(m, f, fl);
                memcpy(m + fl, s, sl + 1);
                free(sym[i]);
                free(sym[i + 1]);
                sym[w++] = m;
                i += 2;
            } else sym[w++] = sym[i++];
        }
        n = w;
        free(f);
        free(s);
    }
    res->ids = malloc(sizeof(int32_t) * (n ? n : 1));
    if (!res->ids) goto oom;
    for (size_t i = 0; i < n; i++) {
        res->ids[i] = vocab_id(t, sym[i]);
        if (res->ids[i] < 0) res->ids[i] = 0; /* cannot happen with a consistent vocabulary */
        free(sym[i]);
    }
    res->n = n;
    free(sym);
    return res;
oom:
    for (size_t i = 0; sym && i < n; i++) free(sym[i]);
    free(sym);
    if (res) free(res->ids);
    free(res);
    return NULL;
}

int clip_tokenizer_encode(ClipTokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids)
{
    char *clean = clip_clean_text(text, len);
    if (!clean) return -1;
    size_t cl = strlen(clean), cap = 64, n = 0;
    int32_t *out = malloc(cap * sizeof *out);
    PCRE2_SIZE start = 0;
    int rc = -1;
    if (!out) goto done;
    while (start < cl) {
        int m = pcre2_match(t->re, (PCRE2_SPTR)clean, cl, start, 0, t->md, NULL);
        if (m < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
        size_t a = ov[0], b = ov[1];
        if (b <= a) { start = a + 1; continue; }
        const IdList *l;
        IdList special = {0};
        int32_t sid;
        if ((b - a == strlen(t->special[0]) && !memcmp(clean + a, t->special[0], b - a)) ||
            (b - a == strlen(t->special[1]) && !memcmp(clean + a, t->special[1], b - a))) {
            sid = !memcmp(clean + a, t->special[0], b - a) ? t->sot : t->eot;
            special.ids = &sid;
            special.n = 1;
            l = &special;
        } else {
            char *piece = malloc((b - a) * 2 + 1), *q = piece;
            if (!piece) goto done;
            for (size_t i = a; i < b; i++) { strcpy(q, t->byte_sym[(unsigned char)clean[i]]); q += strlen(q); }
            l = name_map_get(&t->cache, piece);
            if (!l) {
                IdList *nl = bpe_piece(t, piece);
                char *k = nl ? keep(t, piece, strlen(piece)) : NULL;
                if (!nl || !k || name_map_put(&t->cache, k, nl)) { free(piece); if (nl) { free(nl->ids); free(nl); } goto done; }
                l = nl;
            }
            free(piece);
        }
        if (n + l->n > cap) {
            while (n + l->n > cap) cap *= 2;
            int32_t *np = realloc(out, cap * sizeof *np);
            if (!np) goto done;
            out = np;
        }
        memcpy(out + n, l->ids, l->n * sizeof *out);
        n += l->n;
        start = b;
    }
    rc = 0;
done:
    free(clean);
    if (rc) { free(out); return -1; }
    *ids = out;
    *n_ids = n;
    return 0;
}

int clip_tokenize(ClipTokenizer *t, const char *text, size_t len, int context, int64_t *row)
{
    int32_t *ids;
    size_t n;
    if (context < 2 || clip_tokenizer_encode(t, text, len, &ids, &n)) return -1;
    memset(row, 0, sizeof(int64_t) * (size_t)context);
    row[0] = t->sot;
    size_t k = 1;
    for (size_t i = 0; i < n && k < (size_t)context; i++) row[k++] = ids[i];
    if (k < (size_t)context) row[k] = t->eot;
    else row[context - 1] = t->eot; /* truncated: the end token stays last */
    free(ids);
    return 0;
}
