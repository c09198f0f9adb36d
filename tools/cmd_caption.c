/* cmd_caption.c — `vclip-run caption`: pseudo-captions for a dataset list,
 * as a long batch job (runtime/caption/captioner.h does the requests).
 *
 * Up to --concurrency videos are in work at once, one request each in
 * flight.  Each finished video is one JSONL line written with a single
 * append and flushed to disk, so a killed run leaves whole lines; a restart
 * drops a torn last line, skips the videos already written and does the
 * rest (resuming is the default; --restart starts over).  A video that
 * cannot be read or a request the server refuses is reported at the end
 * and never stops the run. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../runtime/caption/captioner.h"
#include "../runtime/data/clip_reader.h"
#include "../runtime/data/dataset.h"
#include "../runtime/data/jpeg.h"
#include "cli.h"
#include "commands.h"

#define TOOL "vclip-run caption"

static const char *usage =
    "usage: vclip-run caption --list LIST.csv --root DIR --frame-server URL --frame-model NAME\n"
    "                         --llm-server URL --llm-model NAME -o CAPTIONS.jsonl [options]\n"
    "  Open-VCLIP++'s pseudo-captions: 16 frames sampled sparsely from each video, each captioned by\n"
    "  an image model, and the frame captions merged into one sentence by an LLM (the paper's prompts),\n"
    "  through servers that speak the OpenAI chat-completions protocol (llama.cpp's server, vLLM,\n"
    "  Ollama, hosted APIs).  URL: a base (http://host:8080/v1) or the full .../chat/completions.\n"
    "  -o F.jsonl          {\"video\": ID, \"caption\": TEXT, \"frame_captions\": [...]} per line (ID: the\n"
    "                      list's path), for vclip-run train --captions\n"
    "  --frames N          frames per video (16), the centres of N equal segments\n"
    "  --size S            frames are sent as S x S centre crops, JPEG (384; --quality 90)\n"
    "  --frame-prompt P    the captioning prompt (\"" CAPTION_FRAME_PROMPT "\")\n"
    "  --summary-prompt P  the LLM's user prompt, {} where the frame captions go (default: the paper's)\n"
    "  --system-prompt P   the LLM's system prompt (\"" CAPTION_SYSTEM_PROMPT "\")\n"
    "  --concurrency N     videos in work at once, one request in flight each (4)\n"
    "  --timeout S         per request (120); --retries N (5) with exponential backoff and jitter on\n"
    "                      429, 5xx, dropped connections and timeouts\n"
    "  --max-tokens N      per answer (64)\n"
    "  --api-key-env VAR   the API key's environment variable (OPENAI_API_KEY); never printed\n"
    "  --resume            skip the videos already in -o (the default: a rerun goes on where it stopped)\n"
    "  --restart           start over instead\n"
    "  --failures F.jsonl  also write the failures ({\"video\", \"error\"}) there\n"
    "  --quiet             no progress output\n"
    "Exit status: 0, or 1 when some videos failed (listed at the end; run again to retry them).\n";

typedef struct {
    const Dataset *ds;
    char **ids;                 /* per item: its ID (the list's path) */
    size_t *todo, n_todo, next; /* items to caption; next: the first not taken */
    SamplingConfig sc;
    CaptionConfig cc;
    int quality, fd, tty, quiet;
    pthread_mutex_t mu;
    size_t done, failed;
    char **fail_id, **fail_why;
    double t0;
    size_t printed;             /* the count on the last plain progress line */
    int write_error;
    char write_msg[512];
} Job;

static double now_s(void) { return now_ms() / 1e3; }

static void progress(Job *j, int final)
{
    if (j->quiet) return;
    size_t n = j->done + j->failed;
    double el = now_s() - j->t0, rate = el > 0 ? (double)n / el : 0;
    int eta = rate > 0 ? (int)((double)(j->n_todo - n) / rate + 0.5) : 0;
    if (j->tty) {
        int width = 24, fill = j->n_todo ? (int)(width * n / j->n_todo) : width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\rcaption [%s] %zu/%zu videos  %.2f videos/s  ETA %d:%02d:%02d  %zu failed%s", bar, n, j->n_todo, rate, eta / 3600,
                eta / 60 % 60, eta % 60, j->failed, final ? "\n" : " ");
    } else if (n != j->printed && (final || n % (j->n_todo >= 20 ? j->n_todo / 20 : 1) == 0)) {
        j->printed = n;
        fprintf(stderr, "caption: %zu/%zu videos  %.2f videos/s  ETA %d:%02d:%02d  %zu failed\n", n, j->n_todo, rate, eta / 3600, eta / 60 % 60,
                eta % 60, j->failed);
    }
}

/* One video: frames -> JPEG -> frame captions -> summary.  *line: the JSONL line. */
static int caption_video(Job *j, size_t item, char **line, char *err, size_t cap)
{
    const SamplingConfig *sc = &j->sc;
    size_t frame = (size_t)sc->crop_size * sc->crop_size * 3;
    uint8_t *px = malloc(frame * (size_t)sc->frames);
    char **caps = calloc((size_t)sc->frames, sizeof(char *)), *summary = NULL;
    int rc = -1;
    if (!px || !caps) { snprintf(err, cap, "out of memory"); goto done; }
    if (read_clips(j->ds->items[item].path, sc, 0, 0, 60, px, NULL, NULL, err, cap)) goto done;
    for (int f = 0; f < sc->frames; f++) {
        unsigned char *jpg;
        size_t len;
        if (jpeg_encode(px + frame * (size_t)f, sc->crop_size, sc->crop_size, j->quality, &jpg, &len, err, cap)) goto done;
        int bad = caption_frame(&j->cc, jpg, len, &caps[f], err, cap);
        free(jpg);
        if (bad) goto done;
    }
    if (caption_summary(&j->cc, caps, sc->frames, &summary, err, cap)) goto done;
    json_t *fc = json_array();
    for (int f = 0; f < sc->frames; f++) json_array_append_new(fc, json_string(caps[f]));
    json_t *o = json_pack("{s:s, s:s, s:o}", "video", j->ids[item], "caption", summary, "frame_captions", fc);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(o);
    if (!s) { snprintf(err, cap, "out of memory"); goto done; }
    size_t n = strlen(s);
    if ((*line = realloc(s, n + 2))) { (*line)[n] = '\n'; (*line)[n + 1] = 0; rc = 0; }
    else { free(s); snprintf(err, cap, "out of memory"); }
done:
    for (int f = 0; caps && f < sc->frames; f++) free(caps[f]);
    free(caps);
    free(summary);
    free(px);
    return rc;
}

static void *worker(void *arg)
{
    Job *j = arg;
    char err[1024];
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int stop = j->next >= j->n_todo || j->write_error;
        size_t item = stop ? 0 : j->todo[j->next++];
        pthread_mutex_unlock(&j->mu);
        if (stop) return NULL;
        char *line = NULL;
        int bad = caption_video(j, item, &line, err, sizeof err);
        pthread_mutex_lock(&j->mu);
        if (!bad) { /* one write of the whole line, then to disk: a kill leaves whole lines */
            size_t n = strlen(line);
            ssize_t w = write(j->fd, line, n);
            if (w != (ssize_t)n || fdatasync(j->fd)) {
                j->write_error = 1;
                snprintf(j->write_msg, sizeof j->write_msg, "%s", strerror(w < 0 ? errno : ENOSPC));
            } else {
                j->done++;
            }
        } else {
            char **a = realloc(j->fail_id, sizeof(char *) * (j->failed + 1)), **b = a ? realloc(j->fail_why, sizeof(char *) * (j->failed + 1)) : NULL;
            if (a) j->fail_id = a;
            if (b) {
                j->fail_why = b;
                j->fail_id[j->failed] = j->ids[item];
                j->fail_why[j->failed] = strdup(err);
                j->failed++;
            }
        }
        progress(j, 0);
        pthread_mutex_unlock(&j->mu);
        free(line);
    }
}

/* Item indices ordered by ID, so that a resumed run of 240k videos finds
 * each written line's items by binary search, not by a scan of the list. */
static char *const *sort_ids;
static int by_id(const void *a, const void *b) { return strcmp(sort_ids[*(const size_t *)a], sort_ids[*(const size_t *)b]); }

/* The videos -o already holds; a torn last line (a run killed mid-write) is cut off. */
static int already_done(const char *path, const Job *j, unsigned char *done, char *err, size_t cap)
{
    FILE *f = fopen(path, "r+");
    if (!f) return errno == ENOENT ? 0 : (snprintf(err, cap, "%s: %s", path, strerror(errno)), -1);
    size_t *order = malloc(sizeof(size_t) * (j->ds->n + 1));
    if (!order) { fclose(f); snprintf(err, cap, "out of memory"); return -1; }
    for (size_t i = 0; i < j->ds->n; i++) order[i] = i;
    sort_ids = j->ids;
    qsort(order, j->ds->n, sizeof *order, by_id);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    long good = 0;
    while ((n = getline(&line, &lcap, f)) > 0) {
        json_t *o = line[n - 1] == '\n' ? json_loads(line, 0, NULL) : NULL;
        const char *id = json_string_value(json_object_get(o, "video"));
        if (!o || !id || !json_is_string(json_object_get(o, "caption"))) { json_decref(o); break; }
        size_t lo = 0, hi = j->ds->n; /* the first item with this ID, then all that share it */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (strcmp(j->ids[order[mid]], id) < 0) lo = mid + 1;
            else hi = mid;
        }
        for (; lo < j->ds->n && !strcmp(j->ids[order[lo]], id); lo++) done[order[lo]] = 1;
        json_decref(o);
        good = ftell(f);
    }
    free(line);
    free(order);
    int rc = 0;
    fseek(f, 0, SEEK_END);
    if (ftell(f) != good) {
        fprintf(stderr, "%s: %s: dropping a torn last line (a run stopped while writing it)\n", TOOL, path);
        if (ftruncate(fileno(f), good)) { snprintf(err, cap, "%s: %s", path, strerror(errno)); rc = -1; }
    }
    fclose(f);
    return rc;
}

/* The list's path of each item: its path under root, as the list wrote it. */
static char **item_ids(const Dataset *ds, const char *root)
{
    char **ids = calloc(ds->n + 1, sizeof(char *));
    size_t rl = strlen(root);
    for (size_t i = 0; ids && i < ds->n; i++) {
        const char *rel = ds->items[i].path + (strncmp(ds->items[i].path, root, rl) == 0 ? rl : 0);
        while (*rel == '/') rel++;
        if (!(ids[i] = strdup(rel))) return NULL;
    }
    return ids;
}

int cmd_caption(int argc, char **argv)
{
    static const struct option opts[] = {
        {"list", 1, 0, 'l'}, {"root", 1, 0, 'r'}, {"frame-server", 1, 0, 'F'}, {"frame-model", 1, 0, 'f'}, {"llm-server", 1, 0, 'L'},
        {"llm-model", 1, 0, 'm'}, {"out", 1, 0, 'o'}, {"frames", 1, 0, 'T'}, {"size", 1, 0, 's'}, {"quality", 1, 0, 'q'},
        {"frame-prompt", 1, 0, 'P'}, {"summary-prompt", 1, 0, 'S'}, {"system-prompt", 1, 0, 'Y'}, {"concurrency", 1, 0, 'c'},
        {"timeout", 1, 0, 't'}, {"retries", 1, 0, 'R'}, {"max-tokens", 1, 0, 'M'}, {"api-key-env", 1, 0, 'k'}, {"restart", 0, 0, 'X'}, {"resume", 0, 0, 'W'},
        {"failures", 1, 0, 'E'}, {"quiet", 0, 0, 'Q'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *list = NULL, *root = ".", *out = NULL, *key_env = "OPENAI_API_KEY", *failures = NULL;
    int concurrency = 4, restart = 0, c;
    Job j = {.quality = 90, .fd = -1};
    sampling_defaults(&j.sc);
    j.sc.sparse = 1;
    j.sc.frames = 16;
    j.sc.crop_size = 384;
    j.cc.http = (HttpOptions){120, 5, 0.5, NULL};
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'l': list = optarg; break;
        case 'r': root = optarg; break;
        case 'F': j.cc.frame_url = optarg; break;
        case 'f': j.cc.frame_model = optarg; break;
        case 'L': j.cc.llm_url = optarg; break;
        case 'm': j.cc.llm_model = optarg; break;
        case 'o': out = optarg; break;
        case 'T': bad = cli_parse_int(optarg, 1, CLIP_MAX_FRAMES, &j.sc.frames); break;
        case 's': bad = cli_parse_int(optarg, 16, 4096, &j.sc.crop_size); break;
        case 'q': bad = cli_parse_int(optarg, 1, 100, &j.quality); break;
        case 'P': j.cc.frame_prompt = optarg; break;
        case 'S': j.cc.summary_prompt = optarg; break;
        case 'Y': j.cc.system_prompt = optarg; break;
        case 'c': bad = cli_parse_int(optarg, 1, 256, &concurrency); break;
        case 't': j.cc.http.timeout_s = strtod(optarg, &end); bad = *end || !(j.cc.http.timeout_s > 0); break;
        case 'R': bad = cli_parse_int(optarg, 0, 100, &j.cc.http.retries); break;
        case 'M': bad = cli_parse_int(optarg, 1, 4096, &j.cc.max_tokens); break;
        case 'k': key_env = optarg; break;
        case 'X': restart = 1; break;
        case 'W': restart = 0; break;
        case 'E': failures = optarg; break;
        case 'Q': j.quiet = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: return cli_usage_error(TOOL, "unknown option (see --help)");
        }
        if (bad) { fprintf(stderr, "%s: bad value '%s'\n", TOOL, optarg ? optarg : ""); return 2; }
    }
    if (optind < argc) return cli_usage_error(TOOL, "unexpected argument (see --help)");
    if (!list || !out || !j.cc.frame_url || !j.cc.frame_model || !j.cc.llm_url || !j.cc.llm_model)
        return cli_usage_error(TOOL, "--list, -o, --frame-server, --frame-model, --llm-server and --llm-model are required");
    char err[1024];
    if (caption_check_prompt(j.cc.summary_prompt, err, sizeof err)) return cli_usage_error(TOOL, err);
    j.sc.min_short = j.sc.max_short = j.sc.crop_size;
    j.cc.http.api_key = getenv(key_env);
    j.cc.max_tokens = j.cc.max_tokens ? j.cc.max_tokens : 64;
    Dataset ds = {0};
    unsigned char *done = NULL;
    int rc = 1;
    pthread_t *threads = NULL;
    int started = 0;
    pthread_mutex_init(&j.mu, NULL);
    if (dataset_load_csv(list, root, &ds, err, sizeof err)) { cli_error(TOOL, list, err); goto finish; }
    j.ds = &ds;
    j.ids = item_ids(&ds, root);
    done = calloc(ds.n + 1, 1);
    j.todo = malloc(sizeof(size_t) * (ds.n + 1));
    if (!j.ids || !done || !j.todo || http_init()) { cli_error(TOOL, NULL, "out of memory"); goto finish; }
    if (!restart && already_done(out, &j, done, err, sizeof err)) { cli_error(TOOL, NULL, err); goto finish; }
    for (size_t i = 0; i < ds.n; i++)
        if (!done[i]) j.todo[j.n_todo++] = i;
    j.fd = open(out, O_WRONLY | O_CREAT | O_APPEND | (restart ? O_TRUNC : 0), 0644);
    if (j.fd < 0) { fprintf(stderr, "%s: %s: %s\n", TOOL, out, strerror(errno)); goto finish; }
    if (!j.quiet && ds.n > j.n_todo) fprintf(stderr, "%s: %zu of %zu videos are already in %s; captioning the other %zu\n", TOOL, ds.n - j.n_todo, ds.n, out, j.n_todo);
    j.tty = isatty(2);
    j.t0 = now_s();
    threads = calloc((size_t)concurrency, sizeof(pthread_t));
    for (int i = 0; threads && i < concurrency && (size_t)i < j.n_todo; i++)
        if (!pthread_create(&threads[i], NULL, worker, &j)) started++;
    for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
    if (j.n_todo) progress(&j, 1);
    if (j.write_error) { fprintf(stderr, "%s: %s: cannot write: %s (the lines before are whole; run again to go on)\n", TOOL, out, j.write_msg); goto finish; }
    FILE *ff = failures ? fopen(failures, "w") : NULL;
    if (failures && !ff) fprintf(stderr, "%s: %s: %s\n", TOOL, failures, strerror(errno));
    if (j.failed) fprintf(stderr, "%s: %zu of %zu videos failed:\n", TOOL, j.failed, j.n_todo);
    for (size_t i = 0; i < j.failed; i++) {
        fprintf(stderr, "  %s: %s\n", j.fail_id[i], j.fail_why[i] ? j.fail_why[i] : "out of memory");
        if (ff) {
            json_t *o = json_pack("{s:s, s:s}", "video", j.fail_id[i], "error", j.fail_why[i] ? j.fail_why[i] : "out of memory");
            char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
            if (s) fprintf(ff, "%s\n", s);
            free(s);
            json_decref(o);
        }
    }
    if (ff) fclose(ff);
    if (!j.quiet) printf("%zu videos captioned, %zu failed, %zu already done: %s\n", j.done, j.failed, ds.n - j.n_todo, out);
    rc = j.failed ? 1 : 0;
finish:
    if (j.fd >= 0) close(j.fd);
    for (size_t i = 0; i < j.failed; i++) free(j.fail_why[i]);
    free(j.fail_id);
    free(j.fail_why);
    for (size_t i = 0; j.ids && i < ds.n; i++) free(j.ids[i]);
    free(j.ids);
    free(j.todo);
    free(done);
    free(threads);
    dataset_free(&ds);
    pthread_mutex_destroy(&j.mu);
    return rc;
}
