/* vclip.c — include/vclip.h over the library: each call converts its
 * arguments, calls the same code the command-line tools use (the compile
 * API, the clip reader, the tokenizer, runtime/eval/classify.h) and turns a
 * failure into vclip_last_error()'s message.  The only file built with the
 * API's symbols visible (libvclip.so hides everything else). */
#define VCLIP_BUILDING_LIBRARY
#include "../include/vclip.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../models/tokenizer/tokenizer_source.h"
#include "../runtime/data/clip_reader.h"
#include "../runtime/data/preprocess.h"
#include "../runtime/eval/classify.h"
#include "../runtime/train/checkpoint.h"
#include "../onnx/onnx_io.h"
#include "../tools/version.h"

static _Thread_local char last_error[1024];

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *vclip_version(void) { return VCLIP_VERSION; }
const char *vclip_last_error(void) { return last_error; }

void vclip_tensor_free(vclip_tensor *t)
{
    if (!t) return;
    free(t->data);
    memset(t, 0, sizeof *t);
}

/* A library tensor holding a copy of t's data. */
static int hand_out(const Tensor *t, vclip_tensor *out)
{
    memset(out, 0, sizeof *out);
    if (t->rank > VCLIP_MAX_RANK) { fail("an output of rank %d: more than %d", t->rank, VCLIP_MAX_RANK); return -1; }
    if (t->dtype != DT_F32 && t->dtype != DT_I64) { fail("an output of a type this API does not carry (float32 and int64 only)"); return -1; }
    out->dtype = (vclip_dtype)dtype_to_onnx(t->dtype);
    out->rank = t->rank;
    for (int d = 0; d < t->rank; d++) out->dims[d] = t->dims[d];
    if (!(out->data = malloc(t->nbytes ? t->nbytes : 1))) { fail("out of memory"); return -1; }
    memcpy(out->data, t->data, t->nbytes);
    return 0;
}

static int compile_options(const vclip_options *o, CompileOptions *co)
{
    memset(co, 0, sizeof *co);
    co->precision = PRECISION_AUTO;
    if (!o) return 0;
    if (o->target && target_parse(o->target, &co->target)) { fail("target '%s': cpu or cuda", o->target); return -1; }
    if (o->precision && precision_parse(o->precision, &co->precision)) { fail("precision '%s': auto, fp32, bf16 or fp16", o->precision); return -1; }
    if (o->threads < 0 || o->frames < 0 || o->window < 0) { fail("threads, frames and window cannot be negative"); return -1; }
    co->threads = o->threads;
    co->frames = o->frames;
    co->window = o->frames > 0 && o->window == 0 ? 1 : o->window;
    char err[512];
    if (compile_check(co, err, sizeof err)) { fail("%s", err); return -1; }
    return 0;
}

/* ---- models ---- */

struct vclip_model { Model *m; };

vclip_model *vclip_model_load(const char *onnx_path, const vclip_options *opt)
{
    CompileOptions co;
    char err[1024];
    if (!onnx_path) { fail("no model path"); return NULL; }
    if (compile_options(opt, &co)) return NULL;
    vclip_model *m = calloc(1, sizeof *m);
    if (!m) { fail("out of memory"); return NULL; }
    if (!(m->m = vclip_compile(onnx_path, &co, err, sizeof err))) { fail("%s", err); free(m); return NULL; }
    return m;
}

void vclip_model_free(vclip_model *m)
{
    if (!m) return;
    model_free(m->m);
    free(m);
}

int vclip_model_num_inputs(const vclip_model *m) { return m ? model_graph(m->m)->n_inputs : 0; }
int vclip_model_num_outputs(const vclip_model *m) { return m ? model_graph(m->m)->n_outputs : 0; }
const char *vclip_model_input_name(const vclip_model *m, int i)
{
    return m && i >= 0 && i < model_graph(m->m)->n_inputs ? model_graph(m->m)->inputs[i]->name : NULL;
}
const char *vclip_model_output_name(const vclip_model *m, int i)
{
    return m && i >= 0 && i < model_graph(m->m)->n_outputs ? model_graph(m->m)->outputs[i]->name : NULL;
}

int vclip_model_run(vclip_model *m, const vclip_tensor *inputs, int n_in, vclip_tensor *outputs, int n_out)
{
    if (!m || (n_in && !inputs) || (n_out && !outputs)) { fail("vclip_model_run: a NULL argument"); return -1; }
    Graph *g = model_graph(m->m);
    if (n_in != g->n_inputs) { fail("the model has %d inputs, %d given", g->n_inputs, n_in); return -1; }
    if (n_out < 0 || n_out > g->n_outputs) { fail("the model has %d outputs, %d asked for", g->n_outputs, n_out); return -1; }
    Tensor **in = calloc((size_t)n_in + 1, sizeof(Tensor *)), **out = calloc((size_t)g->n_outputs + 1, sizeof(Tensor *));
    int rc = -1;
    char err[1024];
    if (!in || !out) { fail("out of memory"); goto done; }
    for (int i = 0; i < n_in; i++) {
        const vclip_tensor *t = &inputs[i];
        DType dt = dtype_from_onnx((int32_t)t->dtype);
        if ((dt != DT_F32 && dt != DT_I64) || t->rank < 0 || t->rank > VCLIP_MAX_RANK || !t->data) {
            fail("input %d ('%s'): float32 or int64 data of rank 0..%d expected", i, g->inputs[i]->name, VCLIP_MAX_RANK);
            goto done;
        }
        for (int d = 0; d < t->rank; d++)
            if (t->dims[d] < 0) { fail("input %d ('%s'): dimension %d is negative", i, g->inputs[i]->name, d); goto done; }
        if (!(in[i] = tensor_borrow(dt, t->rank, t->dims, t->data))) { fail("out of memory"); goto done; }
    }
    if (model_run(m->m, in, out, err, sizeof err)) { fail("%s", err); goto done; }
    for (int i = 0; i < n_out; i++)
        if (hand_out(out[i], &outputs[i])) {
            for (int j = 0; j < i; j++) vclip_tensor_free(&outputs[j]);
            goto done;
        }
    rc = 0;
done:
    for (int i = 0; in && i < n_in; i++) tensor_free(in[i]);
    for (int i = 0; out && i < g->n_outputs; i++) tensor_free(out[i]);
    free(in);
    free(out);
    return rc;
}

/* ---- videos and text ---- */

int vclip_load_video(const char *path, int frames, int size, int views, vclip_tensor *out)
{
    if (!path || !out) { fail("vclip_load_video: a NULL argument"); return -1; }
    if (frames < 1 || frames > CLIP_MAX_FRAMES || size < 8 || size > 4096 || views < 1 || views > 64) {
        fail("frames 1..%d, size 8..4096 and views 1..64 expected (got %d, %d, %d)", CLIP_MAX_FRAMES, frames, size, views);
        return -1;
    }
    SamplingConfig sc;
    sampling_defaults(&sc);
    sc.frames = frames;
    sc.crop_size = size;
    sc.views = views;
    size_t per_clip = (size_t)frames * size * size * 3;
    uint8_t *px = malloc(per_clip * (size_t)views);
    float *x = malloc(sizeof(float) * per_clip * (size_t)views);
    char err[1024];
    if (!px || !x) { fail("out of memory"); free(px); free(x); return -1; }
    if (read_clips(path, &sc, 0, 0, 60, px, NULL, NULL, err, sizeof err)) { fail("%s", err); free(px); free(x); return -1; }
    for (int v = 0; v < views; v++) normalize_clip(px + (size_t)v * per_clip, frames, size, x + (size_t)v * per_clip);
    free(px);
    *out = (vclip_tensor){VCLIP_FLOAT32, 5, {views, frames, 3, size, size}, x};
    return 0;
}

int vclip_tokenize(const char *const *texts, int n, vclip_tensor *out)
{
    if (!texts || !out || n < 1) { fail("vclip_tokenize: no texts"); return -1; }
    char err[512];
    TokenizerSource src = {0};
    ClipTokenizer *tok = tokenizer_open(&src, err, sizeof err);
    if (!tok) { fail("%s", err); return -1; }
    int64_t *ids = calloc((size_t)n * 77, sizeof(int64_t));
    int rc = -1;
    if (!ids) fail("out of memory");
    for (int i = 0; ids && i < n; i++) {
        if (!texts[i]) { fail("text %d is NULL", i); goto done; }
        if (clip_tokenize(tok, texts[i], strlen(texts[i]), 77, ids + (size_t)i * 77)) { fail("out of memory"); goto done; }
    }
    if (ids) {
        *out = (vclip_tensor){VCLIP_INT64, 2, {n, 77}, ids};
        ids = NULL;
        rc = 0;
    }
done:
    free(ids);
    clip_tokenizer_free(tok);
    return rc;
}

/* ---- zero-shot classification ---- */

struct vclip_classifier {
    Evaluator ev;
    Tensor *W;   /* the classes set */
};

vclip_classifier *vclip_classifier_open(const char *visual, const char *weights, const char *text_model, const vclip_options *opt)
{
    CompileOptions co;
    char err[1024];
    if (!visual || !text_model) { fail("a classifier needs a visual model and a text model"); return NULL; }
    if (compile_options(opt, &co)) return NULL;
    int frames = co.frames > 0 ? (int)co.frames : 8, window = co.frames > 0 ? co.window : 1;
    co.frames = 0;
    co.window = 0;
    vclip_classifier *c = calloc(1, sizeof *c);
    if (!c) { fail("out of memory"); return NULL; }
    evaluator_init(&c->ev);
    Graph *g = onnx_load(visual, err, sizeof err);
    int applied = 0, unused = 0;
    if (!g) goto fail;
    if (weights && checkpoint_apply(g, weights, &applied, &unused, err, sizeof err)) { graph_free(g); goto fail; }
    if (weights && !applied) { graph_free(g); snprintf(err, sizeof err, "%s: none of its weights is a weight of %s", weights, visual); goto fail; }
    if (video_model_from_graph(&c->ev.vm, g, visual, frames, window, &co, err, sizeof err)) goto fail;
    c->ev.sc.frames = c->ev.vm.T;
    c->ev.sc.crop_size = c->ev.vm.size;
    if (evaluator_open_text(&c->ev, text_model, &co, err, sizeof err)) goto fail;
    return c;
fail:
    fail("%s", err);
    vclip_classifier_free(c);
    return NULL;
}

void vclip_classifier_free(vclip_classifier *c)
{
    if (!c) return;
    tensor_free(c->W);
    video_model_close(&c->ev.vm);
    evaluator_close_text(&c->ev);
    free(c);
}

static Tensor *features_of(vclip_classifier *c, const char *const *names, int n)
{
    if (!c || (n > 0 && !names) || n < 0) { fail("class features: a NULL argument or a negative count"); return NULL; }
    for (int i = 0; i < n; i++)
        if (!names[i]) { fail("class %d is NULL", i + 1); return NULL; }
    StringList list = {(char **)names, (size_t)n};
    char err[1024];
    Tensor *W = classify_class_features(&c->ev, &list, err, sizeof err);
    if (!W) fail("%s", err);
    return W;
}

int vclip_class_features(vclip_classifier *c, const char *const *names, int n, vclip_tensor *out)
{
    if (!out) { fail("vclip_class_features: no output"); return -1; }
    Tensor *W = features_of(c, names, n);
    int rc = W ? hand_out(W, out) : -1;
    tensor_free(W);
    return rc;
}

int vclip_classifier_set_classes(vclip_classifier *c, const char *const *names, int n)
{
    Tensor *W = features_of(c, names, n);
    if (!W) return -1;
    tensor_free(c->W);
    c->W = W;
    return 0;
}

int vclip_classify(vclip_classifier *c, const char *video, float *probs)
{
    if (!c || !video || !probs) { fail("vclip_classify: a NULL argument"); return -1; }
    if (!c->W) { fail("no classes: call vclip_classifier_set_classes first"); return -1; }
    char err[1024];
    if (classify_video(&c->ev, video, c->W, probs, err, sizeof err)) { fail("%s", err); return -1; }
    return 0;
}
