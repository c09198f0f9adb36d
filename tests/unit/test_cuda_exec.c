/* test_cuda_exec.c — the CUDA executor's logic on an emulated device
 * (cuda_emulator.h), where no GPU is: real CLIP exports (OpenAI and Hugging
 * Face, visual and text) and a VCLIP temporal graph run through
 * cuda_session_run four times each — the eager first run, the planned one,
 * the one recorded as a CUDA graph, a replay — and every answer must equal
 * the CPU session's.  Checked along the way: every node ran on the
 * "device" but shape arithmetic (the text towers' end-of-text lookup
 * included: Cast, Equal, ArgMax, Add on integers), the arena was planned,
 * graphs were recorded and replayed, new input shapes re-plan, and every
 * device allocation is returned when the session ends. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "compare.h"
#define TEST_RNG_SEED 0x57A6EDull
#include "rand.h"
#include "cuda_emulator.h"
#include "../../onnx/onnx_io.h"
#include "../../passes/passes.h"
#include "../../runtime/cuda/cuda_exec.h"
#include "../../runtime/eval/video_features.h"
#include "../../runtime/cpu/session.h"
#include "../../runtime/npy.h"
#include "../../runtime/safetensors.h"
#include "../../runtime/train/optimizer.h"
#include "../../runtime/train/train_graph.h"
#include "../../runtime/train/trainer.h"

static Graph *compiled(const char *fixture, int frames)
{
    char path[1024], err[1024];
    snprintf(path, sizeof path, VCLIP_DATA_DIR "/tests/fixtures/%s/model.onnx", fixture);
    Graph *g = onnx_load(path, err, sizeof err);
    CHECK(g != NULL, "%s: %s", path, err);
    if (!g) return NULL;
    PassOptions po = {0};
    TemporalOptions to = {frames, 1, 0};
    if (run_passes(g, default_pipeline, &po, err, sizeof err) || (frames && temporal_attention(g, &to, err, sizeof err) < 0) ||
        run_passes(g, kernel_pipeline, &po, err, sizeof err)) {
        CHECK(0, "%s: %s", fixture, err);
        graph_free(g);
        return NULL;
    }
    return g;
}

/* The same batch with new values again and again, then a smaller batch (a new plan). */
static void check_model(const char *fixture, const char *input_file, int frames)
{
    char err[1024], path[1024];
    Graph *g = compiled(fixture, frames);
    if (!g) return;
    snprintf(path, sizeof path, VCLIP_DATA_DIR "/tests/fixtures/%s", input_file);
    Tensor *in = npy_load(path, err, sizeof err);
    CHECK(in != NULL && g->n_inputs == 1 && g->n_outputs == 1, "%s: %s", path, in ? "one input and one output expected" : err);
    if (!in || g->n_inputs != 1 || g->n_outputs != 1) { tensor_free(in); graph_free(g); return; }
    Session *cpu = session_new(g, &(ExecOptions){.threads = 2}, err, sizeof err);
    CudaSession *cs = cuda_session_new(g, &(CudaOptions){0}, err, sizeof err);
    CHECK(cpu && cs, "%s: sessions: %s", fixture, err);
    long allocs_before = emu.live_allocs, replays_before = emu.replays;
    for (int run = 0; cpu && cs && run < 5; run++) {
        /* new values every run (a replay must compute, not return the last
         * answer): pixels scaled, token rows rotated (each row's end of text
         * moves); the last run a smaller batch: a new plan, eager again */
        int64_t d[IR_MAX_RANK];
        memcpy(d, in->dims, sizeof d);
        if (run == 4) d[0] = 1;
        Tensor *x = tensor_new(in->dtype, in->rank, d);
        size_t row = x->nbytes / (size_t)d[0];
        for (int64_t b = 0; b < d[0]; b++) memcpy((char *)x->data + b * row, (char *)in->data + (b + run) % in->dims[0] * row, row);
        if (x->dtype == DT_F32)
            for (int64_t i = 0; i < tensor_numel(x); i++) ((float *)x->data)[i] *= 1.0f + 0.25f * (float)run;
        Tensor *want = NULL, *got = NULL;
        int rc = session_run(cpu, &x, &want, err, sizeof err);
        CHECK(rc == 0, "%s: cpu: %s", fixture, err);
        rc = cuda_session_run(cs, &x, &got, err, sizeof err);
        CHECK(rc == 0, "%s run %d: cuda: %s", fixture, run, err);
        double diff = rel_diff(got, want);
        CHECK(diff < 1e-4, "%s run %d: emulated device vs CPU: rel diff %g", fixture, run, diff);
        CudaStats st;
        cuda_session_stats(cs, &st);
        if (run == 0) printf("%s%s: %d nodes on the device, %d of shape arithmetic on the host\n", fixture, frames ? " (VCLIP)" : "",
                             st.device_nodes, st.shape_nodes);
        CHECK(st.host_nodes == 0, "%s run %d: %d nodes fell back to the host (%s)", fixture, run, st.host_nodes, st.host_ops);
        if (run == 0) CHECK(st.arena_bytes > 0 && st.weight_bytes > 0, "%s: arena %zu, weights %zu", fixture, st.arena_bytes, st.weight_bytes);
        if (run == 3) {
            long replays = emu.replays - replays_before;
            CHECK(replays == 2, "%s: %ld CUDA graph launches in runs 3 and 4, want 2 (%s)", fixture, replays, st.graph_note);
        }
        tensor_free(want);
        tensor_free(got);
        tensor_free(x);
    }
    cuda_session_free(cs);
    session_free(cpu);
    cublaslt_release(); /* the GEMMs' workspace lives for the process */
    CHECK(emu.live_allocs == allocs_before, "%s: %ld device buffers left after the session", fixture, emu.live_allocs - allocs_before);
    tensor_free(in);
    graph_free(g);
}

/* The training step captured whole, on the session that just ran the
 * graph: cuda_session_train keeps the parameters and AdamW's moments on the
 * device; the step after the plan's first records the forward and backward
 * pass and the update (norm, clipping, skip decision, AdamW) as two CUDA
 * graphs, and from then on a step launches no kernel and no GEMM of its
 * own: the host writes the step's scalars (lr's) and the inputs, replays,
 * and reads back the outputs and the norm.  Oracle: the CPU session with
 * runtime/train/optimizer.c's AdamW and clipping (max_norm 0.05, below the
 * norm, so the clip scale is in play), three steps at lr 1e-3; the
 * parameters must agree as the trainer's test's do.  A fourth step with a
 * NaN in the video must be skipped by the replayed update, leaving every
 * parameter as it was, bit for bit. */
static void check_captured_step(TrainGraph *tg, Session *cpu, CudaSession *cs, Tensor **inputs)
{
    char err[1024];
    int n = tg->n_params, no = tg->g->n_outputs;
    const double lr = 1e-3, max_norm = 0.05;
    AdamW opt;
    Tensor **data = calloc((size_t)n, sizeof *data), **want = calloc((size_t)n, sizeof *want), **got = calloc((size_t)no, sizeof *got);
    const char **names = calloc((size_t)n, sizeof *names);
    for (int i = 0; i < n; i++) { data[i] = tg->params[i]->konst; names[i] = tg->params[i]->name; }
    CHECK(adamw_init(&opt, &ADAMW_DEFAULTS, data, names, n) == 0, "out of memory");
    CudaTrainSpec spec = {n, 3, tg->params, opt.decay, opt.cfg.beta1, opt.cfg.beta2, opt.cfg.eps, opt.cfg.weight_decay};
    int rc = cuda_session_train(cs, &spec, err, sizeof err);
    CHECK(rc == 0, "cuda_session_train: %s", err);
    double worst_norm = 0;
    long launches = 0, gemms = 0;
    CudaStats before, after;
    for (int k = 1; !rc && k <= 3; k++) {
        CudaTrainStep st = {.step = k, .lr = lr, .max_norm = max_norm, .check_loss = 1};
        cuda_session_stats(cs, &before);
        launches = emu.launches, gemms = emu.gemms;
        rc = cuda_session_train_run(cs, inputs, got, &st, err, sizeof err);
        launches = emu.launches - launches, gemms = emu.gemms - gemms;
        cuda_session_stats(cs, &after);
        CHECK(rc == 0 && st.applied, "captured step %d on the emulated device: %s", k, rc ? err : "the update was skipped");
        for (int i = 0; i < no; i++) { tensor_free(got[i]); got[i] = NULL; }
        if (rc || session_run(cpu, inputs, got, err, sizeof err)) { CHECK(0, "step %d on the CPU: %s", k, err); rc = -1; break; }
        double norm = grad_global_norm(got + 3, n);
        adamw_step(&opt, got + 3, lr, clip_scale(norm, max_norm));
        CHECK(norm > 2 * max_norm, "step %d: gradient norm %g: the test wants clipping in play", k, norm);
        worst_norm = fmax(worst_norm, fabs(st.norm - norm) / norm);
        for (int i = 0; i < no; i++) { tensor_free(got[i]); got[i] = NULL; }
    }
    CHECK(!rc && launches == 0 && gemms == 0 && after.graph_replays == before.graph_replays + 1 &&
          after.update_replays == before.update_replays + 1,
          "the third captured step: %ld kernel launches and %ld GEMMs of its own, %d step and %d update replays; want all replayed", launches,
          gemms, after.graph_replays - before.graph_replays, after.update_replays - before.update_replays);
    CHECK(worst_norm < 1e-4, "captured steps: gradient norms on the emulated device off the CPU's by %g", worst_norm);
    for (int i = 0; i < n; i++) want[i] = tensor_copy(data[i]); /* the CPU's parameters; then the device's into the graph */
    CHECK(!rc && cuda_session_train_sync(cs, NULL, NULL, NULL, 1, err, sizeof err) == 0, "reading the parameters back: %s", err);
    double worst = 0;
    for (int i = 0; i < n; i++) worst = fmax(worst, rel_diff(data[i], want[i]));
    CHECK(worst < 1e-4, "captured steps: parameters after 3 AdamW steps on the emulated device off the CPU's by %g", worst);
    /* a NaN in the video: the replayed update must skip, every parameter untouched */
    for (int i = 0; i < n; i++) memcpy(want[i]->data, data[i]->data, data[i]->nbytes);
    float keep = ((float *)inputs[0]->data)[5];
    ((float *)inputs[0]->data)[5] = NAN;
    CudaTrainStep st = {.step = 4, .lr = lr, .max_norm = max_norm, .check_loss = 1};
    launches = emu.launches;
    int rc4 = rc ? -1 : cuda_session_train_run(cs, inputs, got, &st, err, sizeof err);
    launches = emu.launches - launches;
    ((float *)inputs[0]->data)[5] = keep;
    CHECK(rc4 == 0 && !st.applied && !isfinite(st.norm) && launches == 0, "a NaN in the video: rc %d, applied %d, norm %g, %ld launches (%s)",
          rc4, st.applied, st.norm, launches, rc4 ? err : "");
    int moved = 0;
    CHECK(rc4 == 0 && cuda_session_train_sync(cs, NULL, NULL, NULL, 1, err, sizeof err) == 0, "reading the parameters back: %s", err);
    for (int i = 0; i < n; i++) moved += memcmp(want[i]->data, data[i]->data, data[i]->nbytes) != 0;
    CHECK(moved == 0, "a skipped step changed %d parameters", moved);
    printf("captured training step: the third step all replayed (forward, backward and update: no launch of its own), norms within %.1e "
           "and parameters after 3 AdamW steps within %.1e of the CPU's; a NaN step skipped on the device\n", worst_norm, worst);
    for (int i = 0; i < no; i++) tensor_free(got[i]);
    for (int i = 0; i < n; i++) tensor_free(want[i]);
    free(got); free(want); free(data); free(names);
    adamw_free(&opt);
}

/* A whole training step's graph (forward, IWR's second forward, backward,
 * losses) through the CUDA session against the CPU session: the loss, the
 * logits and every parameter's gradient, at the reference's perturbed
 * starting point (test_train_step.c).  Every generated kernel of the
 * graph runs as its CUDA C here, and no node may fall back to the host
 * (shape arithmetic runs there).  Also with --recompute's graph, whose
 * copies of the blocks run between the backward nodes. */
static void check_training_graph(int recompute)
{
    char err[1024];
    const char *ref = VCLIP_DATA_DIR "/tests/fixtures/train_step/reference.safetensors";
    const char *names[4] = {"video", "labels", "caption_features", "class_features"};
    Tensor *t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = safetensors_load(ref, names[i], NULL, NULL, err, sizeof err);
        CHECK(t[i] != NULL, "%s", err);
        if (!t[i]) return;
    }
    TrainGraphConfig c = {.batch = 2, .frames = 8, .window = 1, .class_features = t[3], .logit_scale = 2.6f, .iwr = 1, .beta = 0.5f,
                          .exact_gradient = 1, .captions = 1, .caption_weight = 4, .recompute = recompute};
    TrainGraph tg;
    if (train_graph_build(VCLIP_DATA_DIR "/tests/fixtures/train_step/visual.onnx", &c, &tg, err, sizeof err)) {
        CHECK(0, "%s", err);
        return;
    }
    for (int i = 0; i < tg.n_params; i++) { /* away from θ_CLIP, or IWR's interpolation would see equal weights */
        char name[300];
        snprintf(name, sizeof name, "param0.%s", tg.params[i]->name);
        Tensor *start = safetensors_load(ref, name, NULL, NULL, err, sizeof err), *p = tg.params[i]->konst;
        CHECK(start && start->nbytes == p->nbytes, "%s", start ? "size mismatch" : err);
        if (start && start->nbytes == p->nbytes) memcpy(p->data, start->data, p->nbytes);
        tensor_free(start);
    }
    Tensor *alpha = tensor_new(DT_F32, 0, NULL), *mask = tensor_new(DT_F32, 2, (int64_t[]){2, 2});
    *(float *)alpha->data = 0.3f;
    caption_mask_fill(t[2], mask);
    Tensor *inputs[5] = {t[0], t[1], alpha, t[2], mask};
    int n = tg.g->n_outputs;
    Tensor **want = calloc((size_t)n, sizeof *want), **got = calloc((size_t)n, sizeof *got);
    Session *cpu = session_new(tg.g, &(ExecOptions){.threads = 2}, err, sizeof err);
    CHECK(cpu && session_run(cpu, inputs, want, err, sizeof err) == 0, "training graph on the CPU: %s", err);
    CudaSession *cs = cuda_session_new(tg.g, NULL, err, sizeof err);
    int rc = cs ? cuda_session_run(cs, inputs, got, err, sizeof err) : -1;
    CHECK(rc == 0, "training graph on the emulated device: %s", err);
    int worst_i = 0;
    double worst = 0;
    for (int i = 0; !rc && i < n; i++) {
        double d = rel_diff(got[i], want[i]);
        if (d > worst) { worst = d; worst_i = i; }
    }
    CHECK(!rc && worst < 1e-4, "training graph: emulated device vs CPU: output '%s' off by %g (relative to its largest element)",
          tg.g->outputs[worst_i]->name, worst);
    if (cs) {
        CudaStats st;
        cuda_session_stats(cs, &st);
        printf("training graph%s: %d outputs agree to %.1e; %d nodes on the device, %d of shape arithmetic on the host\n",
               recompute ? " (recompute)" : "", n, worst, st.device_nodes, st.shape_nodes);
        CHECK(st.host_nodes == 0, "training graph: %d nodes fell back to the host (%s); only shape arithmetic may run there", st.host_nodes,
              st.host_ops);
    }
    if (!rc && !recompute) check_captured_step(&tg, cpu, cs, inputs);
    for (int i = 0; i < n; i++) { tensor_free(want[i]); tensor_free(got[i]); }
    free(want);
    free(got);
    cuda_session_free(cs);
    session_free(cpu);
    train_graph_free(&tg);
    tensor_free(alpha);
    tensor_free(mask);
    for (int i = 0; i < 4; i++) tensor_free(t[i]);
    cublaslt_release();
}

/* The trainer on the CUDA target: the reference batch again and again,
 * two epochs of two steps (SWA from the second, a checkpoint each), on the
 * CPU and on the emulated device, where the parameters and AdamW's moments
 * stay (the backend's train_run; the host's copies are refreshed for
 * checkpoints, SWA and the final weights).  The losses and the final (SWA,
 * patched) weights must agree to float32 arithmetic over four AdamW steps
 * at lr 1e-3 (a wrong update is off by ~lr, 1e-3 relative or more).  A
 * third run with bf16 GEMMs must differ from fp32 by bf16's rounding (over
 * 1e-5, under 2e-2), which shows the precision reaches the GEMMs.  A
 * fourth stops after the first epoch and resumes from its checkpoint: the
 * moments must go back to the device (fresh ones are off by ~lr). */
/* The first n values of a metrics.jsonl column (NaN where missing). */
static void metrics_column(const char *dir, const char *key, double *out, int n)
{
    char path[1100], line[1024], pat[64];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    FILE *f = fopen(path, "r");
    for (int k = 0; k < n; k++) out[k] = NAN;
    for (int k = 0; f && k < n && fgets(line, sizeof line, f); k++) {
        const char *l = strstr(line, pat);
        out[k] = l ? atof(l + strlen(pat)) : NAN;
    }
    if (f) fclose(f);
}

/* The reference's batch, its video scaled by 1 + step / 8 (the step's
 * number in the run, from the epoch and the position in it), so that every
 * step's batch differs and a step that computed on another's would show */
typedef struct { Tensor *video, *labels, *captions; int64_t left, fail_epoch, epoch; } FixedBatches;

static int fixed_begin(BatchSource *s, int64_t epoch, int64_t skip, char *err, size_t cap)
{
    FixedBatches *f = s->ctx;
    if (epoch == f->fail_epoch) { snprintf(err, cap, "stopped on purpose before epoch %lld", (long long)epoch + 1); return -1; }
    f->left = s->batches_per_epoch - skip;
    f->epoch = epoch;
    return 0;
}

static int fixed_next(BatchSource *s, Tensor *video, Tensor *labels, Tensor *captions, char *err, size_t cap)
{
    (void)err; (void)cap;
    FixedBatches *f = s->ctx;
    if (f->left <= 0) return 0;
    const float mul = 1.0f + (float)(f->epoch * s->batches_per_epoch + s->batches_per_epoch - f->left--) / 8;
    const float *from = f->video->data;
    float *to = video->data;
    for (int64_t i = 0, n = tensor_numel(video); i < n; i++) to[i] = from[i] * mul;
    memcpy(labels->data, f->labels->data, labels->nbytes);
    if (captions) memcpy(captions->data, f->captions->data, captions->nbytes);
    return 1;
}

/* The reference's batch (every step) and class features; 0, or -1 after a failed check */
static int load_fixture(FixedBatches *fb, Tensor **classes)
{
    char err[1024];
    const char *ref = VCLIP_DATA_DIR "/tests/fixtures/train_step/reference.safetensors";
    *fb = (FixedBatches){safetensors_load(ref, "video", NULL, NULL, err, sizeof err), safetensors_load(ref, "labels", NULL, NULL, err, sizeof err),
                         safetensors_load(ref, "caption_features", NULL, NULL, err, sizeof err), 0, -1, 0};
    *classes = safetensors_load(ref, "class_features", NULL, NULL, err, sizeof err);
    CHECK(fb->video && fb->labels && fb->captions && *classes, "%s", err);
    return fb->video && fb->labels && fb->captions && *classes ? 0 : -1;
}

/* A quiet trainer over the fixture for `epochs` epochs (lr 1e-3, no warm-up,
 * captions), writing to a new folder (dir: its name) */
static void fixture_trainer(TrainerConfig *c, Tensor *classes, int64_t epochs, char *dir, size_t dir_cap)
{
    char *tmp = getenv("TMPDIR");
    snprintf(dir, dir_cap, "%s/vclip-cuda-train-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    trainer_defaults(c, 2, epochs);
    c->graph.class_features = classes;
    c->graph.captions = 1;
    c->lr = 1e-3;
    c->warmup_epochs = 0;
    c->out_dir = dir;
    c->quiet = 1;
}

static void check_trainer(void)
{
    char err[1024], dirs[5][256];
    FixedBatches fb;
    Tensor *classes;
    if (load_fixture(&fb, &classes)) return;
    static const char *names[4] = {"visual.conv1.weight", "onnx::MatMul_436", "visual.transformer.resblocks.1.ln_2.weight", "logit_scale"};
    Tensor *w[5][4] = {{0}};
    double losses[5][4] = {{0}};
    for (int t = 0; t < 5; t++) { /* the CPU, the device in fp32, with bf16 GEMMs, in fp32 stopped after an epoch and resumed,
                                   * with fp16 GEMMs and dynamic loss scaling */
        TrainerConfig c;
        fixture_trainer(&c, classes, 2, dirs[t], sizeof dirs[t]);
        c.swa_start = 0; /* both epochs averaged: SWA's mean with weights 1 and 1/2, on the device for t > 0 */
        c.threads = 2;
        c.target = t ? TARGET_CUDA : TARGET_CPU;
        c.precision = t == 2 ? PRECISION_BF16 : t == 4 ? PRECISION_FP16 : PRECISION_FP32;
        if (t == 4) c.loss_scale = 128; /* 65536 x this head's logit scale of 100 overflows fp16 (check_loss_scaling) */
        BatchSource src = {fixed_begin, fixed_next, 2, &fb};
        TrainResult res;
        int rc = 0;
        long nccl_before[4] = {emu_nccl.calls, emu_nccl.avg_calls, emu_nccl.elements, emu_nccl.groups}, deferred = emu.deferred_copies;
        if (t == 3) { /* the run dies before its second epoch; a new one resumes from the checkpoint */
            fb.fail_epoch = 1;
            rc = trainer_run(VCLIP_DATA_DIR "/tests/fixtures/train_step/visual.onnx", &c, &src, &res, err, sizeof err);
            CHECK(rc == -1 && strstr(err, "stopped on purpose"), "the interrupted run: %s", err);
            fb.fail_epoch = -1;
            c.resume = 1;
            rc = 0;
        }
        if (!rc) rc = trainer_run(VCLIP_DATA_DIR "/tests/fixtures/train_step/visual.onnx", &c, &src, &res, err, sizeof err);
        CHECK(rc == 0 && res.steps == 4, "trainer on %s: %s", t ? "the emulated device" : "the CPU", rc ? err : "not 4 steps");
        /* on the device, each batch's video, labels, caption features and caption mask crossed ahead of its step from
         * page-locked memory, asynchronously (the emulator defers such copies until a stream must have made them) */
        deferred = emu.deferred_copies - deferred;
        CHECK(deferred == (t ? 4 * 4 : 0), "trainer on %s: %ld asynchronous copies from page-locked memory; want %d (4 inputs of 4 batches)",
              t ? "the emulated device" : "the CPU", deferred, t ? 16 : 0);
        char path[1100];
        metrics_column(dirs[t], "loss", losses[t], 4);
        snprintf(path, sizeof path, "%s/weights.safetensors", dirs[t]);
        /* on the device, each step averaged every gradient through NCCL (a world of one here: the same code as
         * eight GPUs), as one group of means over exactly the parameters' elements */
        char **pn = NULL;
        int n_pn = 0;
        long params = 0;
        CHECK(safetensors_names(path, &pn, &n_pn, err, sizeof err) == 0, "%s", err);
        for (int k = 0; k < n_pn; k++) {
            Tensor *p = safetensors_load(path, pn[k], NULL, NULL, err, sizeof err);
            params += p ? (long)tensor_numel(p) : 0;
            tensor_free(p);
            free(pn[k]);
        }
        free(pn);
        long calls = emu_nccl.calls - nccl_before[0], avgs = emu_nccl.avg_calls - nccl_before[1];
        long elements = emu_nccl.elements - nccl_before[2], groups = emu_nccl.groups - nccl_before[3];
        if (t == 0) CHECK(calls == 0, "NCCL was called by the CPU trainer");
        else CHECK(groups == 4 && calls == 4L * n_pn && avgs == calls && elements == 4 * params && emu_nccl.comms == 0 && !emu_nccl.in_group,
                   "trainer on the emulated device: %ld NCCL groups, %ld all-reduces (%ld means) of %ld elements, %d communicators left; "
                   "want 4 groups of %d means over %ld elements each", groups, calls, avgs, elements, emu_nccl.comms, n_pn, params);
        for (int k = 0; k < 4; k++) {
            w[t][k] = safetensors_load(path, names[k], NULL, NULL, err, sizeof err);
            CHECK(w[t][k] != NULL, "%s", err);
        }
    }
    double worst = 0, wd = 0;
    for (int k = 0; k < 4; k++) worst = fmax(worst, fabs(losses[1][k] - losses[0][k]) / fabs(losses[0][k]));
    CHECK(worst < 1e-4, "trainer: losses on the emulated device vs the CPU differ by %g (relative)", worst);
    for (int t = 1; t < 4; t += 2) /* fp32 straight through, and resumed */
        for (int k = 0; k < 4; k++) {
            double d = rel_diff(w[t][k], w[0][k]);
            CHECK(d < 1e-4, "trainer%s: final %s on the emulated device vs the CPU: %g", t == 3 ? " resumed" : "", names[k], d);
            wd = fmax(wd, d);
        }
    for (int k = 0; k < 4; k++)
        CHECK(fabs(losses[3][k] - losses[0][k]) <= 1e-4 * fabs(losses[0][k]), "trainer resumed on the emulated device: step %d's loss %g, CPU %g",
              k + 1, losses[3][k], losses[0][k]);
    double bf = 0;
    for (int k = 0; k < 4; k++) bf = fmax(bf, fabs(losses[2][k] - losses[0][k]) / fabs(losses[0][k]));
    CHECK(bf > 1e-5 && bf < 2e-2, "trainer with bf16 GEMMs: losses %g (relative) from the CPU's fp32 ones; want bf16's rounding, no more", bf);
    double hf = 0;
    for (int k = 0; k < 4; k++) hf = fmax(hf, fabs(losses[4][k] - losses[0][k]) / fabs(losses[0][k]));
    CHECK(hf > 1e-7 && hf < bf, "trainer with fp16 GEMMs: losses %g (relative) from the CPU's fp32 ones; want fp16's rounding, below bf16's", hf);
    printf("trainer on the emulated device: 4 steps, losses within %.1e of the CPU's, final weights within %.1e; with bf16 GEMMs "
           "losses within %.1e, with fp16 GEMMs and loss scaling %.1e\n", worst, wd, bf, hf);
    for (int t = 0; t < 5; t++) {
        for (int k = 0; k < 4; k++) tensor_free(w[t][k]);
        char cmd[1400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dirs[t]);
        CHECK(system(cmd) == 0, "%s", cmd);
    }
    tensor_free(fb.video); tensor_free(fb.labels); tensor_free(fb.captions); tensor_free(classes);
    cublaslt_release();
}

/* fp16's dynamic loss scaling from S = 4096, too large for this head (its
 * logit scale of 100 makes S x the gradients overflow fp16 in the GEMMs;
 * from 65536 the scale settles between 512 and 1024): each such step is
 * skipped and halves S until the steps go through; then every 2 good steps
 * in a row double S again, and an overflow halves it.  The logged scales
 * must follow that rule step by step, with skips and growths both seen. */
static void check_loss_scaling(void)
{
    char err[1024], dir[256];
    FixedBatches fb;
    Tensor *classes;
    if (load_fixture(&fb, &classes)) return;
    TrainerConfig c;
    fixture_trainer(&c, classes, 4, dir, sizeof dir);
    c.target = TARGET_CUDA;
    c.precision = PRECISION_FP16;
    c.loss_scale = 4096;
    c.loss_scale_window = 2;
    BatchSource src = {fixed_begin, fixed_next, 2, &fb};
    TrainResult res;
    int rc = trainer_run(VCLIP_DATA_DIR "/tests/fixtures/train_step/visual.onnx", &c, &src, &res, err, sizeof err);
    CHECK(rc == 0 && res.steps == 8, "loss scaling: %s", rc ? err : "not 8 steps");
    double scale[8], skipped[8];
    metrics_column(dir, "loss_scale", scale, 8);
    metrics_column(dir, "skipped", skipped, 8);
    int bad = 0, skips = 0, grew = 0, good = 0;
    double want = 4096;
    for (int k = 0; k < 8; k++) {
        bad += scale[k] != want;
        if (skipped[k]) { skips++; want /= 2; good = 0; }
        else if (++good == 2) { want *= 2; good = 0; grew++; }
    }
    CHECK(!bad && skips >= 1 && grew >= 1 && skips < 8, "loss scaling: %d steps' scales off the rule; %d skipped, %d growths", bad, skips, grew);
    printf("loss scaling from 4096 on the emulated device: %d of 8 steps skipped by overflow, the scale grew %d times, last %g\n", skips, grew,
           scale[7]);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "%s", cmd);
    tensor_free(fb.video); tensor_free(fb.labels); tensor_free(fb.captions); tensor_free(classes);
    cublaslt_release();
}

/* Mistakes are reported, not crashed on: a wrong input dtype. */
static void check_bad_input(void)
{
    char err[1024];
    Graph *g = compiled("openai_visual_op17", 0);
    if (!g) return;
    CudaSession *cs = cuda_session_new(g, NULL, err, sizeof err);
    int64_t d[4] = {1, 3, 32, 32};
    Tensor *x = tensor_new(DT_F64, 4, d), *out = NULL;
    CHECK(cs && cuda_session_run(cs, &x, &out, err, sizeof err) != 0 && strstr(err, "dtype"), "a f64 image is refused: %s", err);
    tensor_free(x);
    cuda_session_free(cs);
    graph_free(g);
}

/* VCLIP_CUDA_EXEC_ONLY=models|training|trainer runs one part (the mutation
 * checks of tests/test_cuda_host.py use it to stay quick); unset: all. */
static int part(const char *name)
{
    const char *only = getenv("VCLIP_CUDA_EXEC_ONLY");
    return !only || !*only || !strcmp(only, name);
}

/* Staged inputs: two batches copied ahead, each run takes the oldest and
 * gives what an unstaged run gives on the same input (the replayed graph
 * reading them where the recording did); a third batch while two wait, and
 * a run whose input is not shaped like its staged batch, are refused. */
static void check_staging(void)
{
    char err[1024];
    Graph *g = compiled("openai_visual_op17", 0);
    if (!g) return;
    CudaSession *plain = cuda_session_new(g, NULL, err, sizeof err), *ahead = cuda_session_new(g, NULL, err, sizeof err);
    int64_t d[4] = {2, 3, 32, 32}, small[4] = {1, 3, 32, 32};
    Tensor *x[4], *want = NULL, *got = NULL;
    for (int k = 0; k < 4; k++) x[k] = rand_tensor(4, d, -1, 1);
    long deferred = emu.deferred_copies;
    double worst = 0;
    CHECK(plain && ahead && cuda_session_stage(ahead, &x[0], err, sizeof err) == 0, "staging: %s", err);
    for (int k = 0; k < 4 && plain && ahead; k++) { /* eager, planned, recorded, replayed; the next batch staged before each run */
        if (k + 1 < 4) CHECK(cuda_session_stage(ahead, &x[k + 1], err, sizeof err) == 0, "staging batch %d: %s", k + 1, err);
        CHECK(cuda_session_run(plain, &x[k], &want, err, sizeof err) == 0 && cuda_session_run(ahead, &x[k], &got, err, sizeof err) == 0,
              "run %d: %s", k, err);
        if (want && got) worst = fmax(worst, rel_diff(got, want));
        tensor_free(want); tensor_free(got);
        want = got = NULL;
    }
    CudaStats st;
    if (ahead) cuda_session_stats(ahead, &st);
    CHECK(ahead && worst == 0 && st.staged_inputs == 4 && emu.deferred_copies - deferred == 4,
          "staged runs: %g from the unstaged ones (want 0), %d inputs taken from staged batches and %ld deferred copies (want 4)", worst,
          ahead ? st.staged_inputs : -1, emu.deferred_copies - deferred);
    Tensor *odd = tensor_new(DT_F32, 4, small);
    if (ahead) {
        CHECK(cuda_session_stage(ahead, &x[0], err, sizeof err) == 0 && cuda_session_stage(ahead, &x[1], err, sizeof err) == 0 &&
                  cuda_session_stage(ahead, &x[2], err, sizeof err) != 0 && strstr(err, "two batches"),
              "a third waiting batch is refused: %s", err);
        CHECK(cuda_session_run(ahead, &odd, &got, err, sizeof err) != 0 && strstr(err, "staged batch"), "a run unlike its staged batch is refused: %s",
              err);
    }
    tensor_free(odd);
    for (int k = 0; k < 4; k++) tensor_free(x[k]);
    cuda_session_free(plain);
    cuda_session_free(ahead);
    graph_free(g);
    cublaslt_release();
    printf("staged inputs: 4 runs equal to unstaged ones, each batch copied ahead from page-locked memory\n");
}

/* Evaluation's features on the device equal the CPU's, four real clips in
 * two batches, and each batch crossed ahead of its run (the second fetched
 * and staged while the first computed). */
static void check_eval_staging(void)
{
    char err[1024];
    static const char *names[4] = {"apply_eye_makeup.avi", "arm_wrestling.mp4", "cleaning_pool.mp4", "flipping_pancake.mkv"};
    char paths[4][512];
    DatasetItem items[4];
    for (int i = 0; i < 4; i++) {
        snprintf(paths[i], sizeof paths[i], VCLIP_DATA_DIR "/tests/fixtures/videos/%s", names[i]);
        items[i] = (DatasetItem){paths[i], i};
    }
    Dataset ds = {items, 4};
    const char *model = VCLIP_DATA_DIR "/tests/fixtures/openai_visual_op17/model.onnx";
    VideoModel cpu, dev;
    int ok_cpu = video_model_open(&cpu, model, 8, 1, &(CompileOptions){.target = TARGET_CPU, .threads = 2}, err, sizeof err) == 0;
    CHECK(ok_cpu, "%s", err);
    int ok_dev = video_model_open(&dev, model, 8, 1, &(CompileOptions){.target = TARGET_CUDA}, err, sizeof err) == 0;
    CHECK(ok_dev, "%s", err);
    if (ok_cpu && ok_dev) {
        SamplingConfig sc;
        sampling_defaults(&sc);
        sc.frames = 8;
        sc.views = 1;
        sc.crop_size = cpu.size;
        size_t per = (size_t)cpu.T * cpu.D, skipped[2], decoded[2];
        float *f[2] = {calloc(4 * per, sizeof(float)), calloc(4 * per, sizeof(float))};
        char ok[2][4];
        FeatureCache none = {.enabled = 0};
        long deferred = emu.deferred_copies, got = 0;
        int rc[2];
        rc[0] = video_features(&cpu, &ds, &sc, 2, 2, &none, f[0], ok[0], &skipped[0], &decoded[0], err, sizeof err);
        CHECK(rc[0] == 0, "eval features on the CPU: %s", err);
        got = emu.deferred_copies;
        rc[1] = video_features(&dev, &ds, &sc, 2, 2, &none, f[1], ok[1], &skipped[1], &decoded[1], err, sizeof err);
        CHECK(rc[1] == 0, "eval features on the emulated device: %s", err);
        double worst = 0;
        for (size_t i = 0; i < 4 * per; i++) worst = fmax(worst, fabs((double)f[0][i] - f[1][i]));
        CHECK(!rc[0] && !rc[1] && decoded[0] == 4 && decoded[1] == 4 && worst < 1e-5 && got == deferred && emu.deferred_copies - got == 2,
              "eval features: device vs CPU %g (want < 1e-5), %zu and %zu videos decoded, %ld copies from page-locked memory on the CPU "
              "and %ld on the device (want 0 and 2: one per batch)", worst, decoded[0], decoded[1], got - deferred, emu.deferred_copies - got);
        printf("eval features on the emulated device: 4 clips in 2 batches, within %.1e of the CPU's, each batch staged ahead\n", worst);
        free(f[0]); free(f[1]);
    }
    if (ok_cpu) video_model_close(&cpu);
    if (ok_dev) video_model_close(&dev);
    cublaslt_release();
}

int main(void)
{
    emulate_cuda();
    exec_set_threads(2);
    long start = emu.live_allocs;
    if (part("models")) {
        check_model("openai_visual_op17", "openai_visual_op17/input_image.npy", 0);
        check_model("hf_visual_op17", "hf_visual_op17/input_pixel_values.npy", 0);
        check_model("openai_text_op17", "openai_text_op17/input_text.npy", 0);
        check_model("hf_text_op17", "hf_text_op17/input_input_ids.npy", 0);
        check_model("openai_visual_op17", "vclip_temporal/video.npy", 8);
        check_bad_input();
        check_staging();
        check_eval_staging();
    }
    if (part("training")) check_training_graph(0);
    if (part("training")) check_training_graph(1);
    if (part("trainer")) check_trainer();
    if (part("trainer")) check_loss_scaling();
    CHECK(emu.live_allocs == start, "%ld emulated device buffers never freed", emu.live_allocs - start);
    CHECK(emu.live_pinned == 0, "%ld page-locked host buffers never freed", emu.live_pinned);
    printf("emulated device: %ld kernel launches, %ld graph replays\n", emu.launches, emu.replays);
    return TEST_SUMMARY();
}
