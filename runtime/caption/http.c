/* http.c — see http.h. */
#include <curl/curl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "http.h"

int http_init(void) { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1; }

typedef struct { char *data; size_t len, cap; } Buffer;

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    Buffer *b = ctx;
    size_t add = size * n;
    if (b->len + add + 1 > b->cap) {
        size_t want = (b->len + add + 1) * 2;
        char *grown = realloc(b->data, want);
        if (!grown) return 0; /* curl reports a write error */
        b->data = grown;
        b->cap = want;
    }
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = 0;
    return add;
}

typedef struct { double retry_after; } Headers;

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    Headers *h = ctx;
    size_t len = size * n;
    if (len > 12 && !strncasecmp(p, "Retry-After:", 12)) h->retry_after = atof(p + 12);
    return len;
}

static void sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec t = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&t, NULL);
}

/* A short, printable excerpt of a server's answer for messages. */
static void excerpt(const char *body, char *out, size_t cap)
{
    size_t k = 0;
    for (const char *s = body ? body : ""; *s && k + 1 < cap && k < 200; s++) out[k++] = (*s < 0x20 || *s == 0x7f) ? ' ' : *s;
    out[k] = 0;
}

int http_post_json(const HttpOptions *o, const char *url, const char *body, char **response, int *attempts, char *err, size_t cap)
{
    *response = NULL;
    CURL *c = curl_easy_init();
    if (!c) { snprintf(err, cap, "cannot start an HTTP client"); return -1; }
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[1024];
    if (o->api_key && *o->api_key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->api_key);
        headers = curl_slist_append(headers, auth);
        memset(auth, 0, sizeof auth);
    }
    unsigned seed = (unsigned)(uintptr_t)c ^ (unsigned)time(NULL);
    double wait = o->backoff_s > 0 ? o->backoff_s : 0.5;
    int rc = -1, tries = 0;
    for (;; tries++) {
        Buffer b = {0};
        Headers h = {-1};
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(o->timeout_s * 1000));
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for timeouts */
        CURLcode cc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        int retryable;
        char said[256];
        if (cc != CURLE_OK) {
            snprintf(err, cap, "%s: %s", url, curl_easy_strerror(cc));
            retryable = 1;
        } else if (status >= 200 && status < 300) {
            *response = b.data ? b.data : strdup("");
            rc = 0;
            break;
        } else {
            excerpt(b.data, said, sizeof said);
            snprintf(err, cap, "%s: HTTP %ld: %s", url, status, said);
            retryable = status == 429 || status >= 500;
        }
        free(b.data);
        if (!retryable || tries >= o->retries) break;
        double jitter = 1 + 0.5 * ((double)rand_r(&seed) / RAND_MAX);
        sleep_s(h.retry_after >= 0 ? h.retry_after : wait * jitter);
        wait *= 2;
    }
    if (attempts) *attempts = tries + 1;
    if (rc && tries > 0) {
        size_t l = strlen(err);
        snprintf(err + l, cap > l ? cap - l : 0, " (after %d attempts)", tries + 1);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return rc;
}
