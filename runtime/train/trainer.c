/* trainer.c — see trainer.h. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "trainer.h"
#include "checkpoint.h"
#include "grad_reducer.h"
#include "../model.h"
#include "../../ir/base.h"

void trainer_defaults(TrainerConfig *c, int64_t batch, int64_t epochs)
{
    memset(c, 0, sizeof *c);
    c->graph.frames = 8;
    c->graph.window = 1;
    c->graph.batch = batch;
    c->graph.logit_scale = 4.6052f; /* ln 100: CLIP's trained value */
    c->graph.iwr = 1;
    c->graph.beta = 0.5f;
    c->graph.caption_weight = 4.0f;
    c->epochs = epochs;
    c->warmup_epochs = 2;
    c->lr = 3.33e-6 * (double)batch / 64.0;
    c->lr_start = c->lr_min = c->lr / 100.0;
    c->clip_norm = 1.0;
    c->adamw = ADAMW_DEFAULTS;
    c->alpha_lo = 0.0;
    c->alpha_hi = 0.6;
    c->seed = 0;
    c->swa_start = 1; /* the second epoch (from 0), as the released code: checkpoints 2..22 numbered from 1 */
    c->patch_ratio = 0.5;
    c->max_bad_steps = 5;
}

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Drops metric lines past `step` (a resumed run redoes them) and a last line
 * cut short by a kill. */
static int trim_metrics(const char *path, int64_t step, char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    AtomicFile af;
    if (atomic_open(&af, path, "w", err, cap)) { fclose(f); return -1; }
    while (fgets(line, sizeof line, f)) {
        const char *s = strstr(line, "\"step\": ");
        size_t len = strlen(line);
        if (!s || !len || line[len - 1] != '\n' || strtoll(s + 8, NULL, 10) > step) continue;
        fputs(line, af.f);
    }
    fclose(f);
    return atomic_commit(&af, err, cap);
}

static void progress_line(const TrainerConfig *c, int64_t epoch, int64_t in_epoch, int64_t per_epoch, int64_t step,
                          int64_t total, double loss, double lr, double clips_s, double eta, int tty)
{
    if (c->quiet) return;
    int eta_s = (int)(eta + 0.5);
    if (tty) {
        int width = 24, fill = per_epoch ? (int)(width * in_epoch / per_epoch) : width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\repoch %lld/%lld [%s] %lld/%lld  loss %.4f  lr %.3g  %.1f clips/s  ETA %d:%02d:%02d ",
                (long long)epoch + 1, (long long)c->epochs, bar, (long long)in_epoch, (long long)per_epoch, loss, lr, clips_s,
                eta_s / 3600, eta_s / 60 % 60, eta_s % 60);
    } else {
        fprintf(stderr, "step %lld/%lld  epoch %lld  loss %.4f  lr %.3g  %.1f clips/s  ETA %d:%02d:%02d\n", (long long)step,
                (long long)total, (long long)epoch + 1, loss, lr, clips_s, eta_s / 3600, eta_s / 60 % 60, eta_s % 60);
    }
    fflush(stderr);
}

/* JSON has no NaN or Infinity: those become null. */
static const char *json_number(double x, char buf[32])
{
    if (!isfinite(x)) return "null";
    snprintf(buf, 32, "%.9g", x);
    return buf;
}

typedef struct {
    TrainGraph tg;
    AdamW opt;
    Tensor **swa, **data;
    const char **names;
    char *ckpt, *metrics, *weights;
} Run;

static void run_free(Run *r)
{
    for (int i = 0; r->swa && i < r->tg.n_params; i++) tensor_free(r->swa[i]);
    free(r->swa);
    free(r->data);
    free(r->names);
    adamw_free(&r->opt);
    train_graph_free(&r->tg);
    free(r->ckpt);
    free(r->metrics);
    free(r->weights);
}

static int save(Run *r, const TrainerConfig *c, const TrainState *st, char *err, size_t cap)
{
    CheckpointView v = {r->tg.n_params, r->names, r->data, &r->opt, c->swa_start >= 0 ? r->swa : NULL, st, c->config_json};
    return checkpoint_save(r->ckpt, &v, err, cap);
}

/* weights.safetensors: SWA average (when kept), then the patch toward θ_CLIP. */
static int write_weights(Run *r, const TrainerConfig *c, const TrainState *st, char *err, size_t cap)
{
    int n = r->tg.n_params, rc = -1;
    Tensor **w = calloc((size_t)n, sizeof(Tensor *));
    if (!w) { snprintf(err, cap, "out of memory"); return -1; }
    for (int i = 0; i < n; i++) {
        const Tensor *src = (c->swa_start >= 0 && st->swa_count > 0) ? r->swa[i] : r->data[i];
        if (!(w[i] = tensor_copy(src))) { snprintf(err, cap, "out of memory"); goto done; }
        float *x = w[i]->data;
        const float *x0 = r->tg.initial[i]->data;
        for (int64_t j = 0, m = tensor_numel(w[i]); j < m && c->patch_ratio > 0; j++)
            x[j] = (float)(c->patch_ratio * x0[j] + (1 - c->patch_ratio) * x[j]);
    }
    CheckpointView v = {n, r->names, w, NULL, NULL, NULL, c->config_json};
    rc = checkpoint_save(r->weights, &v, err, cap);
    if (!rc && c->swa_start >= 0 && st->swa_count > 0) { /* the SWA average unpatched, for other patch ratios */
        char *swa = path_in(c->out_dir, "swa.safetensors");
        CheckpointView sv = {n, r->names, r->swa, NULL, NULL, NULL, c->config_json};
        rc = swa ? checkpoint_save(swa, &sv, err, cap) : -1;
        free(swa);
    }
done:
    for (int i = 0; i < n; i++) tensor_free(w[i]);
    free(w);
    return rc;
}

/* TrainStep.reduce on a device: the ranks' mean of every gradient, in place, by NCCL */
static int reduce_on_device(void *ctx, const unsigned long long *grads, const int64_t *numel, int n, char *err, size_t cap)
{
    void **bufs = malloc(sizeof(void *) * (size_t)(n + 1));
    size_t *counts = malloc(sizeof(size_t) * (size_t)(n + 1));
    int rc = -1;
    if (!bufs || !counts) snprintf(err, cap, "out of memory");
    else {
        for (int i = 0; i < n; i++) bufs[i] = (void *)(uintptr_t)grads[i], counts[i] = (size_t)numel[i];
        rc = comm_allreduce_many(ctx, bufs, counts, n, COMM_F32, 1, err, cap);
    }
    free(bufs);
    free(counts);
    return rc;
}

/* Every rank must run the same job from the same state: a rank started with
 * other options, another list or another checkpoint would silently train
 * something else, so they compare fingerprints first. */
static int check_same_run(Comm *comm, const TrainerConfig *c, const BatchSource *src, int n_params, const TrainState *st,
                          char *err, size_t cap)
{
    uint64_t h = fnv1a_str(FNV_OFFSET, c->config_json ? c->config_json : "");
    h = fnv1a_u64(fnv1a_u64(fnv1a_u64(h, (uint64_t)n_params), (uint64_t)src->batches_per_epoch), (uint64_t)c->graph.batch);
    h = fnv1a_u64(fnv1a_u64(fnv1a_u64(h, (uint64_t)st->step), (uint64_t)c->epochs), c->seed);
    int size = comm_size(comm);
    uint64_t *all = malloc(sizeof(uint64_t) * (size_t)size);
    if (!all) { snprintf(err, cap, "out of memory"); return -1; }
    int rc = comm_allgather(comm, &h, sizeof h, all, err, cap);
    for (int r = 1; !rc && r < size; r++)
        if (all[r] != all[0]) {
            snprintf(err, cap, "rank %d's run differs from rank 0's (options, video list, batches per epoch or checkpoint): "
                     "start every rank with the same command", r);
            rc = -1;
        }
    free(all);
    return rc;
}

/* The same starting weights everywhere: rank 0's. */
static int broadcast_params(Comm *comm, Tensor **data, int n, char *err, size_t cap)
{
    for (int i = 0; i < n; i++)
        if (comm_broadcast(comm, data[i]->data, data[i]->nbytes, 0, err, cap)) return -1;
    return 0;
}

int trainer_check_target(Target t, char *err, size_t cap)
{
    char why[384];
    if (backend_for(t)->available(why, sizeof why) == 0) return 0;
    snprintf(err, cap, "--target %s: cannot train there: %s", target_name(t), why);
    return -1;
}

/* After the first step: the activations' memory, and what --recompute did to it */
static void report_memory(const Model *sess, const TrainGraph *tg, int tty)
{
    ModelStats ms;
    model_stats(sess, &ms);
    size_t bytes = ms.backend.peak_bytes ? ms.backend.peak_bytes : ms.backend.arena_bytes;
    if (!bytes) return;
    char how[160] = "";
    if (tg->recompute.blocks)
        snprintf(how, sizeof how, " (--recompute: %d blocks keep only their input; %d forward nodes run again in the backward pass)",
                 tg->recompute.blocks, tg->recompute.nodes);
    /* three significant digits below 10 MB: a small model's plain and recomputed peaks differ in the third */
    if (bytes < 10e6) fprintf(stderr, "%strainer: the step's activations take %.3g MB at their peak%s\n", tty ? "\n" : "", bytes / 1e6, how);
    else fprintf(stderr, "%strainer: the step's activations take %.0f MB at their peak%s\n", tty ? "\n" : "", bytes / 1e6, how);
}

/* The loader's inputs of one batch (video, labels, caption features and
 * mask; the rest of the graph's inputs are set per step), and fetching the
 * next one into them: 1 with a batch, 0 at the end of the epoch, -1 error */
typedef struct {
    Tensor *video, *labels, *captions, *mask;
    double fetch_s;          /* the host's time getting it */
} BatchInputs;

static int in_sets(const BatchInputs *sets, const Tensor *t)
{
    for (int j = 0; j < 2; j++)
        if (t && (t == sets[j].video || t == sets[j].labels || t == sets[j].captions || t == sets[j].mask)) return 1;
    return 0;
}

static int fetch_batch(BatchSource *src, BatchInputs *b, char *err, size_t cap)
{
    double t0 = now_ms();
    int got = src->next(src, b->video, b->labels, b->captions, err, cap);
    if (got > 0 && b->captions) caption_mask_fill(b->captions, b->mask);
    b->fetch_s = (now_ms() - t0) / 1e3;
    return got;
}

/* Where the backend copies inputs ahead (CUDA), the next batch is fetched
 * and staged while the device runs the current step (model_while_running),
 * into the other of two sets of inputs */
typedef struct {
    BatchSource *src;
    Model *sess;
    BatchInputs *next;
    int video_k, labels_k, cap_k; /* where the batch's inputs are among the graph's */
    int got, fetched;        /* the fetch's result; whether it ran this step */
} Lookahead;

static int fetch_and_stage(Lookahead *la, char *err, size_t cap)
{
    la->fetched = 1;
    if ((la->got = fetch_batch(la->src, la->next, err, cap)) <= 0) return la->got < 0 ? -1 : 0;
    Tensor *staged[8] = {0};
    staged[la->video_k] = la->next->video;
    staged[la->labels_k] = la->next->labels;
    if (la->next->captions) { staged[la->cap_k] = la->next->captions; staged[la->cap_k + 1] = la->next->mask; }
    return model_stage(la->sess, staged, err, cap) < 0 ? -1 : 0;
}

static int while_running_fetch(void *ctx, char *err, size_t cap) { return fetch_and_stage(ctx, err, cap); }

int trainer_run(const char *onnx, const TrainerConfig *cfg, BatchSource *src, TrainResult *res, char *err, size_t cap)
{
    Run r = {0};
    Model *sess = NULL;
    GradReducer *red = NULL;
    Comm *device_comm = NULL, *own_comm = NULL;
    Tensor *in[6] = {0}, **outs = NULL; /* the graph's inputs (train_graph.h), loss_scale last */
    BatchInputs sets[2] = {{0}};         /* the loader's inputs among them, double buffered where the backend stages */
    FILE *mf = NULL;
    TrainerConfig local = *cfg;
    const TrainerConfig *c = &local;
    int ranks = comm_size(c->comm), lead = comm_rank(c->comm) == 0; /* lead: the rank that logs and writes */
    if (!lead) local.quiet = 1, local.progress = 0;
    local.graph.cpu_bf16 = c->target == TARGET_CPU && c->precision == PRECISION_BF16;
    local.graph.loss_scale = c->precision == PRECISION_FP16 || c->loss_scale > 0;
    int rc = -1, tty = c->progress && isatty(2);
    memset(res, 0, sizeof *res);
    if (trainer_check_target(c->target, err, cap)) return -1;
    if (c->epochs < 1 || !src->batches_per_epoch) { snprintf(err, cap, "nothing to train: %lld epochs of %lld batches", (long long)c->epochs, (long long)src->batches_per_epoch); return -1; }
    if (mkdir(c->out_dir, 0777) && errno != EEXIST) { snprintf(err, cap, "%s: %s", c->out_dir, strerror(errno)); return -1; }
    r.ckpt = path_in(c->out_dir, "checkpoint.safetensors");
    r.metrics = path_in(c->out_dir, "metrics.jsonl");
    r.weights = path_in(c->out_dir, "weights.safetensors");
    if (!r.ckpt || !r.metrics || !r.weights) { snprintf(err, cap, "out of memory"); goto done; }
    if (train_graph_build(onnx, &c->graph, &r.tg, err, cap)) goto done;
    int n = r.tg.n_params;
    r.data = calloc((size_t)n, sizeof(Tensor *));
    r.names = calloc((size_t)n, sizeof(char *));
    r.swa = calloc((size_t)n, sizeof(Tensor *));
    if (!r.data || !r.names || !r.swa) { snprintf(err, cap, "out of memory"); goto done; }
    for (int i = 0; i < n; i++) {
        r.data[i] = r.tg.params[i]->konst;
        r.names[i] = r.tg.params[i]->name;
        if (!(r.swa[i] = tensor_copy(r.data[i]))) { snprintf(err, cap, "out of memory"); goto done; }
    }
    if (adamw_init(&r.opt, &c->adamw, r.data, r.names, n)) { snprintf(err, cap, "out of memory"); goto done; }
    TrainState st = {.rng = c->seed ^ 0x5EEDull};
    if (c->init && !c->resume) {
        CheckpointView v = {n, r.names, r.data, NULL, NULL, NULL, NULL};
        if (checkpoint_load(c->init, &v, NULL, NULL, err, cap)) goto done;
    }
    if (c->resume) {
        if (access(r.ckpt, F_OK)) { snprintf(err, cap, "--resume: there is no checkpoint to resume from (%s)", r.ckpt); goto done; }
        CheckpointView v = {n, r.names, r.data, &r.opt, c->swa_start >= 0 ? r.swa : NULL, NULL, NULL};
        if (checkpoint_load(r.ckpt, &v, &r.opt, &st, err, cap)) goto done;
        if (lead && trim_metrics(r.metrics, st.step, err, cap)) goto done;
        if (!c->quiet) fprintf(stderr, "trainer: resuming %s at step %lld (epoch %lld)\n", r.ckpt, (long long)st.step, (long long)st.epoch + 1);
    } else if (lead && !access(r.metrics, F_OK) && unlink(r.metrics)) {
        snprintf(err, cap, "%s: %s", r.metrics, strerror(errno));
        goto done;
    }
    if (ranks > 1 && (check_same_run(c->comm, c, src, n, &st, err, cap) || broadcast_params(c->comm, r.data, n, err, cap))) goto done;
    if (lead && !(mf = fopen(r.metrics, "a"))) { snprintf(err, cap, "%s: %s", r.metrics, strerror(errno)); goto done; }
    const TrainGraphConfig *gc = &c->graph;
    const Value *vv = r.tg.video;
    int64_t vd[5];
    for (int i = 0; i < 5; i++) vd[i] = vv->shape.d[i].n;
    in[0] = tensor_new(DT_F32, 5, vd);
    in[1] = tensor_new(DT_I64, 1, &gc->batch);
    int k = 2;
    if (gc->iwr) in[k++] = tensor_new(DT_F32, 0, NULL);
    int cap_k = k;
    if (gc->captions) {
        in[k++] = tensor_new(DT_F32, 2, (int64_t[]){gc->batch, gc->class_features->dims[1]});
        in[k++] = tensor_new(DT_F32, 2, (int64_t[]){gc->batch, gc->batch});
    }
    int scale_k = k;
    if (gc->loss_scale && !(in[k++] = tensor_new(DT_F32, 0, NULL))) { snprintf(err, cap, "out of memory"); goto done; }
    if (gc->loss_scale && !(st.loss_scale > 0)) st.loss_scale = c->loss_scale > 0 ? c->loss_scale : 65536.0; /* kept by checkpoints */
    if (!gc->loss_scale) st.loss_scale = 0;
    int64_t scale_window = c->loss_scale_window > 0 ? c->loss_scale_window : 2000;
    outs = calloc((size_t)r.tg.g->n_outputs, sizeof(Tensor *));
    sess = model_new(r.tg.g, 0, &(CompileOptions){.target = c->target, .precision = c->precision, .threads = c->threads, .outputs_in_arena = 1}, err, cap);
    if (!outs || !sess || !in[0] || !in[1] || (gc->iwr && !in[2]) || (gc->captions && (!in[cap_k] || !in[cap_k + 1]))) { if (sess) snprintf(err, cap, "out of memory"); goto done; }
    /* on a backend that keeps the parameters and moments itself (CUDA), the
     * update happens there; the host's copies are refreshed before they are
     * read (checkpoints, SWA, the final weights) */
    TrainSpec spec = {n, 3, r.tg.params, r.opt.decay, c->adamw.beta1, c->adamw.beta2, c->adamw.eps, c->adamw.weight_decay};
    int on_device = model_train_begin(sess, &spec, err, cap);
    if (on_device < 0) goto done;
    on_device = on_device == 0;
    if (on_device) { /* NCCL over the same ranks; with one rank too where NCCL is there, so that one GPU runs the same code as eight */
        Comm *host = c->comm ? c->comm : (own_comm = comm_open(COMM_SINGLE, 0, err, cap));
        char why[512];
        if (!host) goto done;
        if (!(device_comm = comm_open_nccl(host, why, sizeof why)) && ranks > 1) {
            snprintf(err, cap, "data-parallel training on %s: %s", target_name(c->target), why);
            goto done;
        }
    }
    if (ranks > 1 && !on_device) {
        int64_t *numel = malloc(sizeof(int64_t) * (size_t)n);
        if (!numel) { snprintf(err, cap, "out of memory"); goto done; }
        for (int i = 0; i < n; i++) numel[i] = tensor_numel(r.data[i]);
        red = grad_reducer_new(c->comm, 3, n, numel, c->bucket_bytes ? c->bucket_bytes : 25u << 20, err, cap);
        free(numel);
        if (!red) goto done;
        model_observe(sess, grad_reducer_observe, red); /* where it cannot, the buckets start after the run */
    }
    if (on_device && c->resume && model_train_sync(sess, r.opt.m, r.opt.v, r.swa, 0, err, cap)) goto done;
    int64_t per = src->batches_per_epoch, total = per * c->epochs;
    LrSchedule sched = {c->lr, c->lr_min, c->lr_start, c->warmup_epochs * per, total};
    int bad_run = 0;
    double t0 = (now_ms() / 1e3);
    int64_t steps_here = 0;
    sets[0] = (BatchInputs){in[0], in[1], gc->captions ? in[cap_k] : NULL, gc->captions ? in[cap_k + 1] : NULL, 0};
    /* staging: a second set of the loader's inputs, and the first batch of each epoch fetched before its step */
    int ahead = on_device && model_can_stage(sess), cur = 0, have = 0;
    if (ahead) {
        Tensor *const a[4] = {sets[0].video, sets[0].labels, sets[0].captions, sets[0].mask};
        Tensor **b[4] = {&sets[1].video, &sets[1].labels, &sets[1].captions, &sets[1].mask};
        for (int i = 0; i < 4; i++)
            if (a[i] && !(*b[i] = tensor_new(a[i]->dtype, a[i]->rank, a[i]->dims))) { snprintf(err, cap, "out of memory"); goto done; }
    }
    Lookahead la = {src, sess, NULL, 0, 1, cap_k, 0, 0};
    if (ahead) model_while_running(sess, while_running_fetch, &la);
    for (; st.epoch < c->epochs; st.epoch++, st.step_in_epoch = 0) {
        if (src->begin_epoch(src, st.epoch, st.step_in_epoch, err, cap)) goto done;
        if (ahead) {
            la.next = &sets[cur];
            if (fetch_and_stage(&la, err, cap)) goto done;
            have = la.got;
        }
        for (;;) {
            double step_t0 = now_ms();
            BatchInputs *b = &sets[cur];
            int got = ahead ? have : fetch_batch(src, b, err, cap);
            double data_s = b->fetch_s; /* the host's time getting this step's batch (ahead: while the previous step ran) */
            if (got < 0) goto done;
            if (got == 0) break;
            in[0] = b->video, in[1] = b->labels;
            if (gc->captions) in[cap_k] = b->captions, in[cap_k + 1] = b->mask;
            double alpha = c->alpha_lo + (c->alpha_hi - c->alpha_lo) * (double)(rng_next(&st.rng) >> 11) * (1.0 / 9007199254740992.0);
            if (gc->iwr) *(float *)in[2]->data = (float)alpha;
            double scale = gc->loss_scale ? st.loss_scale : 1.0;
            if (gc->loss_scale) *(float *)in[scale_k]->data = (float)scale;
            double lr = lr_at(&sched, st.step), norm;
            /* several ranks: the norm of the averaged gradients decides alone (a rank's own loss could differ from the
             * others', and every rank must decide alike; a loss that is not finite makes the norm not finite anyway) */
            TrainStep ts = {r.opt.step + 1, lr, c->clip_norm, scale, ranks == 1, 0, 0, device_comm ? reduce_on_device : NULL, device_comm};
            la.next = &sets[cur ^ 1];
            la.fetched = 0;
            if (on_device ? model_train_run(sess, in, outs, &ts, err, cap) : model_run(sess, in, outs, err, cap)) goto done;
            if (ahead) { /* the next batch, fetched while the step ran (or now, if the backend never called back) */
                if (!la.fetched && fetch_and_stage(&la, err, cap)) goto done;
                have = la.got;
                cur ^= 1;
            }
            double losses[2] = {tensor_get_f64(outs[0], 0), tensor_get_f64(outs[1], 0)}, waited = comm_wait_seconds(c->comm);
            if (ranks > 1 && ((red && grad_reducer_finish(red, outs, err, cap)) || comm_allreduce(c->comm, losses, 2, COMM_F64, 1, err, cap)))
                goto done;
            waited = comm_wait_seconds(c->comm) - waited;
            double loss = losses[0], ce = losses[1];
            norm = (on_device ? ts.norm : grad_global_norm(outs + 3, n)) / scale; /* the loss's own gradients' norm */
            int finite = isfinite(loss) && isfinite(norm);
            if (on_device && ts.applied != finite) { snprintf(err, cap, "the device's update and the host disagree on step %lld", (long long)st.step + 1); goto done; }
            if (finite) {
                if (on_device) r.opt.step++; /* made on the device */
                else adamw_step(&r.opt, outs + 3, lr, clip_scale(norm, c->clip_norm) / scale);
                bad_run = 0;
                if (gc->loss_scale && ++st.scale_good_steps >= scale_window) { st.loss_scale = scale * 2; st.scale_good_steps = 0; }
            } else if (gc->loss_scale && isfinite(loss) && scale > 1) { /* S times the gradients overflowed: a smaller S */
                st.skipped++;
                st.loss_scale = scale / 2;
                st.scale_good_steps = 0;
                if (!c->quiet) fprintf(stderr, "%strainer: step %lld: the gradients overflowed at loss scale %g: step skipped, the scale halved\n",
                                       tty ? "\n" : "", (long long)st.step + 1, scale);
            } else {
                st.skipped++;
                if (!c->quiet) fprintf(stderr, "%strainer: step %lld: loss %g, gradient norm %g: not finite, step skipped\n",
                                       tty ? "\n" : "", (long long)st.step + 1, loss, norm);
                bad_run++;
            }
            st.step++;
            st.step_in_epoch++;
            if (!steps_here++ && !c->quiet) report_memory(sess, &r.tg, tty);
            for (int i = 0; i < r.tg.g->n_outputs; i++) { tensor_free(outs[i]); outs[i] = NULL; }
            double el = (now_ms() / 1e3) - t0, clips_s = (double)(steps_here * gc->batch * ranks) / (el > 0 ? el : 1e-9);
            double eta = (double)(total - st.step) * el / (double)steps_here;
            char nl[32], nc[32], nn[32], extra[96] = "";
            if (ranks > 1) snprintf(extra, sizeof extra, ", \"comm_wait_s\": %.6f", waited);
            if (gc->loss_scale) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ", \"loss_scale\": %.17g", scale);
            if (mf) fprintf(mf, "{\"step\": %lld, \"epoch\": %lld, \"loss\": %s, \"loss_ce\": %s, \"lr\": %.9g, \"alpha\": %.9g, "
                                "\"grad_norm\": %s, \"skipped\": %d, \"clips_per_s\": %.3f, \"step_s\": %.6f, \"data_s\": %.6f%s}\n",
                            (long long)st.step, (long long)st.epoch + 1, json_number(loss, nl), json_number(ce, nc), lr,
                            gc->iwr ? alpha : 0.0, json_number(norm, nn), !finite, clips_s, (now_ms() - step_t0) / 1e3, data_s, extra);
            if (mf && fflush(mf)) { snprintf(err, cap, "%s: %s", r.metrics, strerror(errno)); goto done; }
            res->last_loss = loss;
            if (bad_run >= c->max_bad_steps) {
                snprintf(err, cap, "the loss or gradients were not finite for %d steps in a row (step %lld); stopping. "
                         "The last good checkpoint is %s", bad_run, (long long)st.step, r.ckpt);
                goto done;
            }
            if (tty || st.step % (total >= 20 ? total / 20 : 1) == 0 || st.step == total)
                progress_line(c, st.epoch, st.step_in_epoch, per, st.step, total, loss, lr, clips_s, eta, tty);
            if (c->save_every > 0 && st.step % c->save_every == 0 && bad_run == 0 &&
                ((on_device && model_train_sync(sess, r.opt.m, r.opt.v, r.swa, 1, err, cap)) || (lead && save(&r, c, &st, err, cap))))
                goto done;
        }
        if (c->swa_start >= 0 && st.epoch >= c->swa_start) { /* running mean of the per-epoch weights */
            double w = 1.0 / (double)(st.swa_count + 1);
            if (on_device && model_train_swa(sess, w, err, cap)) goto done; /* where the weights are */
            for (int i = 0; !on_device && i < n; i++) {
                float *a = r.swa[i]->data;
                const float *x = r.data[i]->data;
                for (int64_t j = 0, m = tensor_numel(r.data[i]); j < m; j++) a[j] = (float)(a[j] + w * ((double)x[j] - a[j]));
            }
            st.swa_count++;
        }
        /* the epoch's weights, moments and SWA mean to the host, for the checkpoint */
        if (on_device && model_train_sync(sess, r.opt.m, r.opt.v, r.swa, 1, err, cap)) goto done;
        if (lead && c->keep_epochs) {
            char name[64];
            snprintf(name, sizeof name, "epoch-%lld.safetensors", (long long)st.epoch + 1);
            char *path = path_in(c->out_dir, name);
            CheckpointView v = {n, r.names, r.data, NULL, NULL, NULL, c->config_json};
            int bad = !path || checkpoint_save(path, &v, err, cap);
            free(path);
            if (bad) goto done;
        }
        TrainState next = st;
        next.epoch++;
        next.step_in_epoch = 0;
        if (lead && bad_run == 0 && save(&r, c, &next, err, cap)) goto done;
    }
    if (tty && !c->quiet) fputc('\n', stderr);
    if (lead && write_weights(&r, c, &st, err, cap)) goto done;
    res->device_reduce = device_comm != NULL;
    if (red) {
        GradReducerStats gs;
        grad_reducer_stats(red, &gs);
        res->comm_wait_seconds = gs.wait_seconds;
        res->overlapped = gs.overlapped;
        res->lead_seconds = gs.lead_seconds;
        res->buckets = gs.buckets;
        res->grad_bytes = gs.bytes;
    }
    res->steps = st.step;
    res->skipped = st.skipped;
    res->seconds = (now_ms() / 1e3) - t0;
    rc = 0;
done:
    if (mf) fclose(mf);
    grad_reducer_free(red);
    comm_close(device_comm, rc != 0);
    comm_close(own_comm, 0);
    model_free(sess);
    for (int i = 0; i < 6; i++)
        if (!in_sets(sets, in[i])) tensor_free(in[i]); /* the loader's inputs are the sets' */
    for (int j = 0; j < 2; j++) { tensor_free(sets[j].video); tensor_free(sets[j].labels); tensor_free(sets[j].captions); tensor_free(sets[j].mask); }
    for (int i = 0; outs && i < r.tg.g->n_outputs; i++) tensor_free(outs[i]);
    free(outs);
    run_free(&r);
    return rc;
}
