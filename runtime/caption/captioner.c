/* captioner.c — see captioner.h.  Requests are built and answers read
 * with Jansson; an answer's text is choices[0].message.content. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "captioner.h"

static char *endpoint(const char *base)
{
    size_t n = strlen(base);
    while (n && base[n - 1] == '/') n--;
    const char *tail = "/chat/completions";
    size_t t = strlen(tail);
    int full = n >= t && !strncmp(base + n - t, tail, t);
    char *url = malloc(n + t + 1);
    if (url) snprintf(url, n + t + 1, "%.*s%s", (int)n, base, full ? "" : tail);
    return url;
}

static char *base64(const unsigned char *p, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *o++ = abc[v >> 18 & 63];
        *o++ = abc[v >> 12 & 63];
        *o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? abc[v & 63] : '=';
    }
    *o = 0;
    return out;
}

/* POSTs {"model", "messages", "max_tokens", "temperature": 0} and returns the answer's text. */
static int chat(const CaptionConfig *c, const char *base, const char *model, json_t *messages, char **text, char *err, size_t cap)
{
    *text = NULL;
    json_t *req = json_pack("{s:s, s:o, s:i, s:f}", "model", model, "messages", messages, "max_tokens", c->max_tokens > 0 ? c->max_tokens : 64,
                            "temperature", 0.0);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL, *url = endpoint(base), *answer = NULL;
    json_decref(req);
    int rc = -1;
    if (!body || !url) { snprintf(err, cap, "out of memory"); goto done; }
    if (http_post_json(&c->http, url, body, &answer, NULL, err, cap)) goto done;
    json_error_t je;
    json_t *r = json_loads(answer, 0, &je);
    const char *content = json_string_value(json_object_get(json_object_get(json_array_get(json_object_get(r, "choices"), 0), "message"), "content"));
    if (!content) {
        snprintf(err, cap, "%s: the answer has no choices[0].message.content%s%s", url, r ? "" : ": not JSON: ", r ? "" : je.text);
    } else {
        while (*content == ' ' || *content == '\n' || *content == '\t') content++;
        size_t n = strlen(content);
        while (n && (content[n - 1] == ' ' || content[n - 1] == '\n' || content[n - 1] == '\t')) n--;
        if (!n) snprintf(err, cap, "%s: the server answered with empty text", url);
        else if ((*text = strndup(content, n))) rc = 0;
        else snprintf(err, cap, "out of memory");
    }
    json_decref(r);
done:
    free(body);
    free(url);
    free(answer);
    return rc;
}

int caption_check_prompt(const char *p, char *err, size_t cap)
{
    const char *at = p ? strstr(p, "{}") : NULL;
    if (p && (!at || strstr(at + 2, "{}"))) {
        snprintf(err, cap, "--summary-prompt needs exactly one {} where the frame captions go");
        return -1;
    }
    return 0;
}

int caption_frame(const CaptionConfig *c, const unsigned char *jpeg, size_t len, char **caption, char *err, size_t cap)
{
    char *b64 = base64(jpeg, len), *url = b64 ? malloc(strlen(b64) + 32) : NULL;
    if (!url) { free(b64); snprintf(err, cap, "out of memory"); return -1; }
    sprintf(url, "data:image/jpeg;base64,%s", b64);
    free(b64);
    json_t *messages = json_pack("[{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}}]}]", "role", "user", "content", "type", "text", "text",
                                 c->frame_prompt ? c->frame_prompt : CAPTION_FRAME_PROMPT, "type", "image_url", "image_url", "url", url);
    free(url);
    if (!messages) { snprintf(err, cap, "out of memory"); return -1; }
    return chat(c, c->frame_url, c->frame_model, messages, caption, err, cap);
}

int caption_summary(const CaptionConfig *c, char *const *frames, int n, char **caption, char *err, size_t cap)
{
    const char *tmpl = c->summary_prompt ? c->summary_prompt : CAPTION_SUMMARY_PROMPT, *at = strstr(tmpl, "{}");
    size_t total = strlen(tmpl) + 1;
    for (int i = 0; i < n; i++) total += strlen(frames[i]) + 2;
    char *joined = malloc(total), *user = malloc(total);
    if (!joined || !user || !at) { free(joined); free(user); snprintf(err, cap, at ? "out of memory" : "the summary prompt has no {}"); return -1; }
    size_t k = 0;
    for (int i = 0; i < n; i++) { /* "a. b. c": each caption once, its own full stop dropped */
        size_t l = strlen(frames[i]);
        while (l && frames[i][l - 1] == '.') l--;
        k += (size_t)sprintf(joined + k, "%s%.*s", i ? ". " : "", (int)l, frames[i]);
    }
    snprintf(user, total, "%.*s%s%s", (int)(at - tmpl), tmpl, joined, at + 2);
    free(joined);
    json_t *messages = json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content", c->system_prompt ? c->system_prompt : CAPTION_SYSTEM_PROMPT,
                                 "role", "user", "content", user);
    free(user);
    if (!messages) { snprintf(err, cap, "out of memory"); return -1; }
    return chat(c, c->llm_url, c->llm_model, messages, caption, err, cap);
}
