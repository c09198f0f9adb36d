/* text_clean.c — CLIP's text cleanup, reproducing open_clip's Python:
 *
 *   whitespace_clean(basic_clean(text)).lower()
 *   basic_clean = ftfy.fix_text, html.unescape twice, strip
 *
 * ftfy.fix_text is mirrored step by step (its own entity unescaping, C1
 * controls, Latin ligatures, character width, quotes, line breaks, terminal
 * escapes, control characters, NFC), repeated until nothing changes, as ftfy
 * does.  Not mirrored: ftfy's mojibake repair (fix_encoding and its helpers
 * restore_byte_a0, replace_lossy_sequences, decode_inconsistent_utf8), which
 * guesses at text that was decoded with the wrong codec; see
 * docs/tokenizer.md.  Tables come from text_tables.h (generated from
 * Python's own data); NFC and case mapping from utf8proc.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "text_clean.h"
#include "text_tables.h"

typedef struct { uint32_t *c; size_t n, cap; int oom; } Cps;

static void push(Cps *s, uint32_t c)
{
    if (s->oom) return;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        uint32_t *p = realloc(s->c, nc * sizeof *p);
        if (!p) { s->oom = 1; return; }
        s->c = p;
        s->cap = nc;
    }
    s->c[s->n++] = c;
}

static void push_utf8(Cps *s, const char *u)
{
    const uint8_t *p = (const uint8_t *)u;
    utf8proc_int32_t cp;
    while (*p) {
        utf8proc_ssize_t k = utf8proc_iterate(p, -1, &cp);
        if (k <= 0) { push(s, 0xFFFD); p++; continue; }
        push(s, (uint32_t)cp);
        p += k;
    }
}

/* Invalid UTF-8 bytes become U+FFFD, one per byte. */
static void decode(Cps *s, const char *text, size_t len)
{
    const uint8_t *p = (const uint8_t *)text, *end = p + len;
    utf8proc_int32_t cp;
    while (p < end) {
        utf8proc_ssize_t k = utf8proc_iterate(p, end - p, &cp);
        if (k <= 0) { push(s, 0xFFFD); p++; continue; }
        push(s, (uint32_t)cp);
        p += k;
    }
}

static char *encode(const Cps *s)
{
    char *out = malloc(s->n * 4 + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < s->n; i++) o += utf8proc_encode_char((utf8proc_int32_t)s->c[i], (uint8_t *)o);
    *o = 0;
    return out;
}

static int cmp_entity(const void *key, const void *e) { return strcmp(key, ((const TextEntity *)e)->name); }

static const char *find_entity(const TextEntity *table, size_t n, const char *name)
{
    const TextEntity *e = bsearch(name, table, n, sizeof *table, cmp_entity);
    return e ? e->value : NULL;
}

#define COUNT(a) (sizeof(a) / sizeof *(a))

static const char *code_map(unsigned c, const void *table, size_t n)
{
    const struct { unsigned code; const char *value; } *t = table;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t[mid].code == c) return t[mid].value;
        if (t[mid].code < c) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int in_sorted(unsigned c, const unsigned *t, size_t n)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t[mid] == c) return 1;
        if (t[mid] < c) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

static int is_alnum_ascii(uint32_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_python_space(uint32_t c) { return in_sorted(c, python_whitespace, COUNT(python_whitespace)); }

/* html.unescape's numeric reference rules; appends the result. */
static void numeric_charref(Cps *o, const uint32_t *digits, size_t n, int hex)
{
    uint64_t v = 0;
    int big = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t d = digits[i];
        unsigned dv = d <= '9' ? d - '0' : (d | 0x20) - 'a' + 10;
        v = v * (hex ? 16 : 10) + dv;
        if (v > 0x10FFFF) big = 1, v = 0x110000;
    }
    const char *rep = big ? NULL : code_map((unsigned)v, html_invalid_charrefs, COUNT(html_invalid_charrefs));
    if (rep) { push_utf8(o, rep); return; }
    if (big || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF) { push(o, 0xFFFD); return; }
    if (in_sorted((unsigned)v, html_invalid_codepoints, COUNT(html_invalid_codepoints))) return;
    push(o, (uint32_t)v);
}

/* Python's html.unescape. */
static void html_unescape(const Cps *in, Cps *o)
{
    for (size_t i = 0; i < in->n;) {
        uint32_t c = in->c[i];
        if (c != '&' || i + 1 >= in->n) { push(o, c); i++; continue; }
        size_t j = i + 1;
        if (in->c[j] == '#') {
            int hex = j + 1 < in->n && (in->c[j + 1] == 'x' || in->c[j + 1] == 'X');
            size_t k = j + 1 + (size_t)hex, start = k;
            while (k < in->n && (hex ? (in->c[k] < 128 && strchr("0123456789abcdefABCDEF", (int)in->c[k]) && in->c[k])
                                     : (in->c[k] >= '0' && in->c[k] <= '9')))
                k++;
            if (k == start) { push(o, c); i++; continue; }
            numeric_charref(o, in->c + start, k - start, hex);
            i = k + (k < in->n && in->c[k] == ';');
            continue;
        }
        /* named: [^\t\n\f <&#;]{1,32};? */
        size_t k = j;
        while (k < in->n && k - j < 32) {
            uint32_t d = in->c[k];
            if (d == '\t' || d == '\n' || d == '\f' || d == ' ' || d == '<' || d == '&' || d == '#' || d == ';') break;
            k++;
        }
        if (k == j) { push(o, c); i++; continue; }
        size_t end = k + (k < in->n && in->c[k] == ';');
        Cps name = {0};
        for (size_t q = j; q < end; q++) push(&name, in->c[q]);
        char *nm = encode(&name);
        const char *val = nm ? find_entity(html5_entities, COUNT(html5_entities), nm) : NULL;
        if (val) push_utf8(o, val);
        else {
            /* the longest prefix (at least 2 chars) that is an entity, then the rest */
            size_t x, nlen = name.n;
            for (x = nlen - 1; x > 1; x--) {
                Cps pre = {0};
                for (size_t q = 0; q < x; q++) push(&pre, name.c[q]);
                char *p = encode(&pre);
                const char *v = p ? find_entity(html5_entities, COUNT(html5_entities), p) : NULL;
                free(p);
                free(pre.c);
                if (v) {
                    push_utf8(o, v);
                    for (size_t q = x; q < nlen; q++) push(o, name.c[q]);
                    break;
                }
            }
            if (x <= 1) {
                push(o, '&');
                for (size_t q = 0; q < nlen; q++) push(o, name.c[q]);
            }
        }
        free(nm);
        free(name.c);
        i = end;
    }
}

/* ftfy.fixes.unescape_html: &#?[0-9A-Za-z]{1,24}; */
static void ftfy_unescape_html(const Cps *in, Cps *o)
{
    for (size_t i = 0; i < in->n;) {
        if (in->c[i] != '&') { push(o, in->c[i]); i++; continue; }
        size_t j = i + 1, hash = j < in->n && in->c[j] == '#';
        size_t k = j + hash;
        while (k < in->n && is_alnum_ascii(in->c[k])) k++;
        size_t run = k - j - hash;
        if (run < 1 || run > 24 || k >= in->n || in->c[k] != ';') { push(o, in->c[i]); i++; continue; }
        Cps m = {0};
        for (size_t q = i; q <= k; q++) push(&m, in->c[q]);
        char *txt = encode(&m);
        const char *val = txt ? find_entity(ftfy_entities, COUNT(ftfy_entities), txt) : NULL;
        if (val) push_utf8(o, val);
        else if (hash) {
            Cps un = {0};
            html_unescape(&m, &un);
            int has_semicolon = 0;
            for (size_t q = 0; q < un.n; q++) if (un.c[q] == ';') has_semicolon = 1;
            const Cps *use = has_semicolon ? &m : &un;
            for (size_t q = 0; q < use->n; q++) push(o, use->c[q]);
            free(un.c);
        } else for (size_t q = 0; q < m.n; q++) push(o, m.c[q]);
        free(txt);
        free(m.c);
        i = k + 1;
    }
}

/* One pass of ftfy's character fixers, in ftfy's order. */
static void ftfy_fixers(const Cps *in, Cps *o)
{
    Cps a = {0};
    for (size_t i = 0; i < in->n; i++) { /* fix_c1_controls, ligatures, width, quotes */
        uint32_t c = in->c[i];
        const char *r = NULL;
        if (c >= 0x80 && c <= 0x9F) r = c1_map[c - 0x80];
        if (r) {
            Cps t = {0};
            push_utf8(&t, r);
            for (size_t q = 0; q < t.n; q++) {
                uint32_t d = t.c[q];
                const char *r2 = code_map(d, ligatures, COUNT(ligatures));
                if (!r2) r2 = code_map(d, width_map, COUNT(width_map));
                if (r2) push_utf8(&a, r2);
                else push(&a, d);
            }
            free(t.c);
            continue;
        }
        if ((r = code_map(c, ligatures, COUNT(ligatures)))) { push_utf8(&a, r); continue; }
        if ((r = code_map(c, width_map, COUNT(width_map)))) { push_utf8(&a, r); continue; }
        push(&a, c);
    }
    Cps b = {0};
    for (size_t i = 0; i < a.n; i++) { /* uncurl_quotes, then fix_line_breaks */
        uint32_t c = a.c[i];
        if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
        else if (c >= 0x201C && c <= 0x201F) c = '"';
        a.c[i] = c;
    }
    for (size_t i = 0; i < a.n; i++) {
        uint32_t c = a.c[i];
        if (c == '\r') { push(&b, '\n'); if (i + 1 < a.n && a.c[i + 1] == '\n') i++; continue; }
        if (c == 0x2028 || c == 0x2029 || c == 0x85) c = '\n';
        push(&b, c);
    }
    for (size_t i = 0; i < b.n; i++) { /* remove_terminal_escapes: \x1b\[[0-9;]*[a-zA-Z] */
        if (b.c[i] == 0x1B && i + 1 < b.n && b.c[i + 1] == '[') {
            size_t k = i + 2;
            while (k < b.n && ((b.c[k] >= '0' && b.c[k] <= '9') || b.c[k] == ';')) k++;
            if (k < b.n && b.c[k] < 128 && ((b.c[k] | 0x20) >= 'a' && (b.c[k] | 0x20) <= 'z')) { i = k; continue; }
        }
        if (in_sorted(b.c[i], control_chars, COUNT(control_chars))) continue; /* remove_control_chars */
        push(o, b.c[i]);
    }
    free(a.c);
    free(b.c);
    o->oom |= a.oom | b.oom;
}

static int nfc(Cps *s)
{
    char *u = encode(s);
    if (!u) return -1;
    utf8proc_uint8_t *n = utf8proc_NFC((const utf8proc_uint8_t *)u);
    free(u);
    if (!n) return -1;
    s->n = 0;
    push_utf8(s, (const char *)n);
    free(n);
    return 0;
}

static int same(const Cps *a, const Cps *b) { return a->n == b->n && (!a->n || !memcmp(a->c, b->c, a->n * sizeof *a->c)); }

/* Python's "cased" and "case-ignorable", for the final-sigma rule of str.lower. */
static int is_cased(uint32_t c)
{
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
           utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c || utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c;
}

static int is_case_ignorable(uint32_t c)
{
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    if (k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
        k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK)
        return 1;
    /* Word_Break MidLetter, MidNumLet, Single_Quote */
    static const uint32_t mid[] = {'\'', '.', ':', 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027,
                                   0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
    for (size_t i = 0; i < sizeof mid / sizeof *mid; i++) if (mid[i] == c) return 1;
    return 0;
}

static void python_lower(const Cps *in, Cps *o)
{
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->c[i];
        if (c == 0x130) { push(o, 'i'); push(o, 0x307); continue; } /* SpecialCasing: İ -> i + combining dot */
        if (c == 0x3A3) { /* Σ: final form after a cased letter and not before one */
            size_t j = i;
            int before = 0, after = 0;
            while (j > 0) { j--; if (is_case_ignorable(in->c[j])) continue; before = is_cased(in->c[j]); break; }
            for (j = i + 1; j < in->n; j++) { if (is_case_ignorable(in->c[j])) continue; after = is_cased(in->c[j]); break; }
            push(o, before && !after ? 0x3C2 : 0x3C3);
            continue;
        }
        push(o, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
    }
}

/* ftfy.fix_and_explain on one segment: the fixers until nothing changes. */
static void ftfy_segment(Cps *s, int unescape)
{
    Cps t = {0};
    for (int iter = 0; iter < 100 && !s->oom; iter++) {
        Cps orig = {0};
        for (size_t i = 0; i < s->n; i++) push(&orig, s->c[i]);
        if (unescape) { t.n = 0; ftfy_unescape_html(s, &t); Cps x = *s; *s = t; t = x; }
        t.n = 0;
        ftfy_fixers(s, &t);
        { Cps x = *s; *s = t; t = x; }
        if (nfc(s)) s->oom = 1;
        int done = same(s, &orig);
        s->oom |= orig.oom | t.oom;
        free(orig.c);
        if (done) break;
    }
    free(t.c);
}

char *clip_clean_text(const char *text, size_t len)
{
    Cps all = {0}, s = {0}, t = {0};
    decode(&all, text, len);
    /* ftfy.fix_text works line by line (each segment ends after a '\n'); once a
     * segment contains '<' it stops unescaping HTML for the rest. */
    int unescape = 1;
    for (size_t pos = 0; pos < all.n;) {
        size_t end = pos;
        while (end < all.n && all.c[end] != '\n') end++;
        if (end < all.n) end++;
        Cps seg = {0};
        for (size_t i = pos; i < end; i++) { push(&seg, all.c[i]); if (all.c[i] == '<') unescape = 0; }
        ftfy_segment(&seg, unescape);
        for (size_t i = 0; i < seg.n; i++) push(&s, seg.c[i]);
        s.oom |= seg.oom;
        free(seg.c);
        pos = end;
    }
    free(all.c);
    for (int k = 0; k < 2; k++) { t.n = 0; html_unescape(&s, &t); Cps x = s; s = t; t = x; }
    /* str.strip(), then " ".join(text.split()) */
    t.n = 0;
    for (size_t i = 0; i < s.n;) {
        while (i < s.n && is_python_space(s.c[i])) i++;
        if (i >= s.n) break;
        if (t.n) push(&t, ' ');
        while (i < s.n && !is_python_space(s.c[i])) push(&t, s.c[i++]);
    }
    s.n = 0;
    python_lower(&t, &s);
    char *out = (s.oom || t.oom) ? NULL : encode(&s);
    free(s.c);
    free(t.c);
    return out;
}
