/* video_features.c — see video_features.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../onnx/onnx_io.h"
#include "../data/preprocess.h"
#include "video_features.h"

int video_model_open(VideoModel *m, const char *path, int frames, int window, const CompileOptions *co, char *err, size_t cap)
{
    memset(m, 0, sizeof *m);
    Graph *g = onnx_load(path, err, cap);
    return g ? video_model_from_graph(m, g, path, frames, window, co, err, cap) : -1;
}

int video_model_from_graph(VideoModel *m, Graph *g, const char *path, int frames, int window, const CompileOptions *co,
                           char *err, size_t cap)
{
    memset(m, 0, sizeof *m);
    if (g->n_inputs == 1 && (g->inputs[0]->dtype == DT_I64 || g->inputs[0]->dtype == DT_I32) && g->inputs[0]->shape.rank == 2) {
        snprintf(err, cap, "%s: a text encoder (its input is token ids, [batch, %lld]), not an image or video encoder", path,
                 (long long)g->inputs[0]->shape.d[1].n);
        graph_free(g);
        return -1;
    }
    CompileOptions o = *co;
    int image_encoder = g->n_inputs == 1 && g->inputs[0]->shape.rank == 4;
    o.frames = image_encoder ? frames : 0;
    o.window = window;
    m->m = vclip_compile_graph(g, path, &o, err, cap);
    if (!m->m) return -1;
    g = model_graph(m->m);
    const Value *in = g->n_inputs == 1 ? g->inputs[0] : NULL, *out = g->outputs[0];
    int ok = in && in->shape.rank == 5 && out->shape.rank == 3 && dim_is_const(out->shape.d[2]);
    for (int i = 1; ok && i < 5; i++) ok = dim_is_const(in->shape.d[i]);
    if (!ok || in->shape.d[2].n != 3 || in->shape.d[3].n != in->shape.d[4].n) {
        snprintf(err, cap, "%s: expected a video encoder: input [B, T, 3, S, S], output [B, T, D]", path);
        return -1;
    }
    m->T = (int)in->shape.d[1].n;
    m->size = (int)in->shape.d[3].n;
    m->D = (int)out->shape.d[2].n;
    return 0;
}

void video_model_close(VideoModel *m)
{
    model_free(m->m);
    memset(m, 0, sizeof *m);
}

void l2_normalize(float *v, int d)
{
    double s = 0;
    for (int i = 0; i < d; i++) s += (double)v[i] * v[i];
    float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int i = 0; i < d; i++) v[i] *= inv;
}

/* A batch's clips normalised into the model's input [videos * views, T, 3, S, S]; NULL: out of memory */
static Tensor *clips_tensor(const VideoModel *m, const uint8_t *pixels, int videos, int views)
{
    size_t clip_px = (size_t)m->T * m->size * m->size * 3;
    int64_t dims[5] = {(int64_t)videos * views, m->T, 3, m->size, m->size};
    Tensor *x = tensor_new(DT_F32, 5, dims);
    for (int k = 0; x && k < videos * views; k++) normalize_clip(pixels + (size_t)k * clip_px, m->T, m->size, (float *)x->data + (size_t)k * clip_px);
    return x;
}

/* The features of x's clips, each frame's L2-normalised, into feat */
static int embed_clips(VideoModel *m, Tensor *x, int videos, int views, float *feat, char *err, size_t cap)
{
    Tensor *outs[8] = {0};
    if (model_run(m->m, &x, outs, err, cap)) return -1;
    memcpy(feat, outs[0]->data, sizeof(float) * (size_t)views * m->T * m->D * (size_t)videos);
    for (int k = 0; k < videos * views * m->T; k++) l2_normalize(feat + (size_t)k * m->D, m->D);
    for (int k = 0; k < model_graph(m->m)->n_outputs; k++) tensor_free(outs[k]);
    return 0;
}

int video_embed(VideoModel *m, const uint8_t *pixels, int videos, int views, float *feat, char *err, size_t cap)
{
    Tensor *x = clips_tensor(m, pixels, videos, views);
    if (!x) { snprintf(err, cap, "out of memory"); return -1; }
    int rc = embed_clips(m, x, videos, views, feat, err, cap);
    tensor_free(x);
    return rc;
}

/* The loader's next batch and its input tensor.  Where the backend stages
 * inputs (CUDA), it is fetched and staged while the device computes the
 * current batch (model_while_running), so its copy overlaps that compute;
 * elsewhere after the run, as it comes. */
typedef struct {
    Loader *ld;
    VideoModel *m;
    int views, stage;
    int got, fetched;       /* loader_next's result (1: b and x hold a batch); whether it ran during this run */
    Batch b;
    Tensor *x;
} NextBatch;

static int fetch_next(void *ctx, char *err, size_t cap)
{
    NextBatch *nb = ctx;
    nb->fetched = 1;
    if ((nb->got = loader_next(nb->ld, &nb->b)) < 0) { snprintf(err, cap, "out of memory"); return -1; }
    if (!nb->got) return 0;
    if (!(nb->x = clips_tensor(nb->m, nb->b.pixels, nb->b.n, nb->views))) { snprintf(err, cap, "out of memory"); return -1; }
    return nb->stage && model_stage(nb->m->m, &nb->x, err, cap) < 0 ? -1 : 0;
}

int video_features(VideoModel *m, const Dataset *ds, const SamplingConfig *sc, int batch, int workers,
                   const FeatureCache *cache, float *feat, char *ok, size_t *skipped, size_t *decoded, char *err, size_t cap)
{
    int V = clips_per_video(sc);
    size_t per_video = (size_t)V * m->T * m->D;
    *skipped = *decoded = 0;
    /* cached videos first; the loader only sees the others */
    Dataset todo = {calloc(ds->n ? ds->n : 1, sizeof(DatasetItem)), 0};
    size_t *where = calloc(ds->n ? ds->n : 1, sizeof(size_t));
    if (!todo.items || !where) { free(todo.items); free(where); snprintf(err, cap, "out of memory"); return -1; }
    for (size_t i = 0; i < ds->n; i++) {
        ok[i] = (char)feature_cache_get(cache, ds->items[i].path, feat + i * per_video, per_video);
        if (!ok[i]) { where[todo.n] = i; todo.items[todo.n++] = ds->items[i]; }
    }
    int rc = 0;
    if (todo.n) {
        LoaderConfig lc = {.ds = &todo, .sampling = *sc, .batch = batch, .workers = workers, .prefetch = 2 * batch,
                           .replace_broken = 0, .time_limit_s = 60};
        Loader *ld = loader_start(&lc, err, cap);
        NextBatch nb = {ld, m, V, ld && model_can_stage(m->m), 0, 0, {0}, NULL};
        if (!ld) rc = -1;
        float *batch_feat = malloc(sizeof(float) * per_video * (size_t)batch);
        if (!batch_feat) { snprintf(err, cap, "out of memory"); rc = -1; }
        if (nb.stage) model_while_running(m->m, fetch_next, &nb);
        if (!rc && fetch_next(&nb, err, cap)) rc = -1;
        while (!rc && nb.got == 1) {
            Batch b = nb.b;
            Tensor *x = nb.x;
            nb.got = nb.fetched = 0;
            nb.x = NULL;
            int rr = embed_clips(m, x, b.n, V, batch_feat, err, cap); /* the next batch is fetched meanwhile where it can be */
            if (!rr && !nb.fetched) rr = fetch_next(&nb, err, cap);
            tensor_free(x);
            if (rr) { batch_free(&b); rc = -1; break; }
            for (int v = 0; v < b.n; v++) {
                size_t i = where[b.items[v]];
                float *f = feat + i * per_video;
                memcpy(f, batch_feat + (size_t)v * per_video, sizeof(float) * per_video);
                feature_cache_put(cache, ds->items[i].path, f, per_video);
                ok[i] = 1;
                (*decoded)++;
            }
            batch_free(&b);
        }
        if (nb.got == 1) batch_free(&nb.b); /* after a failure */
        tensor_free(nb.x);
        if (m->m) model_while_running(m->m, NULL, NULL);
        free(batch_feat);
        if (ld) *skipped = loader_skipped(ld);
        loader_stop(ld);
    }
    free(todo.items);
    free(where);
    return rc;
}

void video_scores(const float *feat, size_t n, int views, int T, int D, const float *W, int C, double scale, float *scores)
{
    for (size_t i = 0; i < n; i++) {
        float *sc = scores + i * (size_t)C;
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int k = 0; k < views * T; k++) {
                const float *e = feat + (i * (size_t)views * T + (size_t)k) * D;
                double dot = 0;
                for (int d = 0; d < D; d++) dot += (double)e[d] * W[(size_t)c * D + d];
                s += dot;
            }
            sc[c] = (float)(scale * s / T); /* mean over frames, summed over views */
        }
    }
}

int video_features_ranks(VideoModel *m, const Dataset *ds, const SamplingConfig *sc, int batch, int workers,
                         const FeatureCache *cache, Comm *comm, float *feat, char *ok, size_t *skipped, size_t *decoded,
                         char *err, size_t cap)
{
    int size = comm_size(comm), rank = comm_rank(comm);
    if (size == 1) return video_features(m, ds, sc, batch, workers, cache, feat, ok, skipped, decoded, err, cap);
    size_t per_video = (size_t)clips_per_video(sc) * (size_t)m->T * (size_t)m->D;
    size_t lo = ds->n * (size_t)rank / (size_t)size, hi = ds->n * (size_t)(rank + 1) / (size_t)size;
    size_t *fbytes = malloc(sizeof(size_t) * (size_t)size), *obytes = malloc(sizeof(size_t) * (size_t)size);
    float *mine = malloc(sizeof(float) * ((hi - lo) * per_video + 1));
    char *mine_ok = malloc(hi - lo + 1);
    int rc = -1;
    if (!fbytes || !obytes || !mine || !mine_ok) { snprintf(err, cap, "out of memory"); goto done; }
    for (int r = 0; r < size; r++) {
        size_t a = ds->n * (size_t)r / (size_t)size, b = ds->n * (size_t)(r + 1) / (size_t)size;
        fbytes[r] = (b - a) * per_video * sizeof(float);
        obytes[r] = b - a;
    }
    Dataset share = {ds->items + lo, hi - lo};
    size_t sk = 0, dec = 0;
    /* a rank whose share fails still joins the gathers below (with its error
     * kept), so that the others stop on a clear message instead of waiting */
    char own[512] = "";
    if (share.n && video_features(m, &share, sc, batch, workers, cache, mine, mine_ok, &sk, &dec, own, sizeof own)) {
        memset(mine, 0, sizeof(float) * share.n * per_video);
        memset(mine_ok, 0, share.n);
    }
    double counts[3] = {(double)sk, (double)dec, own[0] ? 1.0 : 0.0};
    if (comm_allreduce(comm, counts, 3, COMM_F64, 0, err, cap) ||
        comm_allgatherv(comm, mine, fbytes[rank], feat, fbytes, err, cap) ||
        comm_allgatherv(comm, mine_ok, obytes[rank], ok, obytes, err, cap))
        goto done;
    if (own[0]) { snprintf(err, cap, "rank %d: %s", rank, own); goto done; }
    if (counts[2] > 0) { snprintf(err, cap, "another rank failed on its share of the videos (its message is above)"); goto done; }
    *skipped = (size_t)counts[0];
    *decoded = (size_t)counts[1];
    rc = 0;
done:
    free(fbytes);
    free(obytes);
    free(mine);
    free(mine_ok);
    return rc;
}
