/* http.h — JSON over HTTP POST with libcurl, as a long batch job needs it:
 * a timeout per attempt, and retries with exponential backoff and jitter on
 * the answers that mean "later" (429, 5xx) and on transport failures (no
 * connection, a connection dropped mid-answer, a timeout).  Other answers
 * (400, 401, ...) fail at once with the server's message.  The API key goes
 * in a header and never into a message. */
#ifndef VCLIP_HTTP_H
#define VCLIP_HTTP_H

#include <stddef.h>

typedef struct {
    double timeout_s;      /* per attempt (connecting included) */
    int retries;           /* extra attempts after a retryable failure */
    double backoff_s;      /* the first wait; doubled each time, plus up to 50% jitter; a Retry-After header wins */
    const char *api_key;   /* NULL: none; else "Authorization: Bearer KEY" */
} HttpOptions;

/* Once per process, before any thread posts.  0, or -1. */
int http_init(void);

/* POSTs body (JSON) to url; *response: the malloc'd body of a 2xx answer.
 * *attempts (may be NULL) counts the tries.  0, or -1 with why: the last
 * status and the server's message, or the transport's error. */
int http_post_json(const HttpOptions *o, const char *url, const char *body, char **response, int *attempts, char *err, size_t cap);

#endif
