/* cmd_encode_text.c — `vclip-run encode-text`: zero-shot class features from
 * prompt ensembles (each class under every template; each prompt's feature
 * L2-normalized, averaged, the mean renormalized), and caption features,
 * through a text encoder run by the CPU runtime.  Output: safetensors with
 * `class_features` [C, D] and/or `caption_features` [N, D] (f32, unit norm)
 * and the names, templates and caption owners in its metadata. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../ir/ir.h"
#include "../models/prompts.h"
#include "../onnx/onnx_io.h"
#include "../passes/passes.h"
#include "../runtime/exec.h"
#include "../runtime/safetensors.h"
#include "cli.h"
#include "commands.h"

#define TOOL "vclip-run encode-text"

static const char *usage =
    "usage: vclip-run encode-text --text-model TEXT.onnx [--classes FILE] [--captions FILE.jsonl]\n"
    "                             -o OUT.safetensors [options]\n"
    "  --classes FILE      class names: one per line, or {\"0\": \"name\", ...} JSON\n"
    "  --captions FILE     JSONL, one object per line: {\"video\": ID, \"caption\": TEXT}\n"
    "                      (or \"captions\": [TEXT, ...]); one feature row per caption\n"
    "  --templates FILE    prompt templates, one per line with {} (default: the 28 of\n"
    "                      Open-VCLIP: 4 prefixes x 7 forms)\n"
    "  --no-normalize      keep class names as given (default: CamelCase and '_' -> words)\n"
    "  --batch N           texts per forward pass (default 64)\n"
    "  --threads N         BLAS threads\n"
    "  --vocab GZ | --hf-vocab JSON --hf-merges TXT   tokenizer vocabulary\n"
    "Output tensors: class_features [C, D], caption_features [N, D]; f32, unit L2 norm.\n";

typedef struct {
    Graph *g;
    Session *s;
    ClipTokenizer *tok;
    int context, dim, batch;
    DType in_dtype;
} Encoder;

static int encoder_open(Encoder *e, const char *model, int threads, char *err, size_t cap)
{
    e->g = onnx_load(model, err, cap);
    if (!e->g) return -1;
    PassOptions po = {0};
    char msg[512];
    if (run_passes(e->g, default_pipeline, &po, msg, sizeof msg)) { snprintf(err, cap, "%.400s: %s", model, msg); return -1; }
    const Value *in = e->g->n_inputs == 1 ? e->g->inputs[0] : NULL, *out = e->g->outputs[0];
    if (!in || in->shape.rank != 2 || !dim_is_const(in->shape.d[1]) || (in->dtype != DT_I64 && in->dtype != DT_I32)) {
        snprintf(err, cap, "%s: expected a text encoder with one input of token ids [batch, context] (i64 or i32)", model);
        return -1;
    }
    if (out->shape.rank != 2 || !dim_is_const(out->shape.d[1]) || out->dtype != DT_F32) {
        snprintf(err, cap, "%s: expected its first output to be f32 features [batch, D]", model);
        return -1;
    }
    e->context = (int)in->shape.d[1].n;
    e->dim = (int)out->shape.d[1].n;
    e->in_dtype = in->dtype;
    ExecOptions eo = {.threads = threads};
    e->s = session_new(e->g, &eo, err, cap);
    return e->s ? 0 : -1;
}

static void l2_normalize(float *v, int d)
{
    double s = 0;
    for (int i = 0; i < d; i++) s += (double)v[i] * v[i];
    float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int i = 0; i < d; i++) v[i] *= inv;
}

/* Unit-norm features of n texts into out[n * dim]. */
static int encode_texts(Encoder *e, char *const *texts, size_t n, float *out, char *err, size_t cap)
{
    for (size_t start = 0; start < n; start += (size_t)e->batch) {
        size_t b = n - start < (size_t)e->batch ? n - start : (size_t)e->batch;
        int64_t dims[2] = {(int64_t)b, e->context};
        Tensor *ids = tensor_new(e->in_dtype, 2, dims);
        int64_t *row = malloc(sizeof(int64_t) * (size_t)e->context);
        if (!ids || !row) { tensor_free(ids); free(row); snprintf(err, cap, "out of memory"); return -1; }
        for (size_t i = 0; i < b; i++) {
            const char *t = texts[start + i];
            if (clip_tokenize(e->tok, t, strlen(t), e->context, row)) { tensor_free(ids); free(row); snprintf(err, cap, "out of memory"); return -1; }
            for (int k = 0; k < e->context; k++) {
                if (e->in_dtype == DT_I64) ((int64_t *)ids->data)[i * (size_t)e->context + (size_t)k] = row[k];
                else ((int32_t *)ids->data)[i * (size_t)e->context + (size_t)k] = (int32_t)row[k];
            }
        }
        free(row);
        Tensor *outs[8] = {0};
        int rc = session_run(e->s, &ids, outs, err, cap);
        tensor_free(ids);
        if (rc) return -1;
        for (size_t i = 0; i < b; i++) {
            memcpy(out + (start + i) * (size_t)e->dim, (float *)outs[0]->data + i * (size_t)e->dim, sizeof(float) * (size_t)e->dim);
            l2_normalize(out + (start + i) * (size_t)e->dim, e->dim);
        }
        for (int k = 0; k < e->g->n_outputs; k++) tensor_free(outs[k]);
    }
    return 0;
}

static char *json_list(char *const *items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(items[i]));
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

/* captions JSONL -> texts and their video ids */
static int load_captions(const char *path, StringList *texts, StringList *videos, char *err, size_t cap)
{
    size_t len;
    char *buf = cli_read_file(path, &len, err, cap);
    if (!buf) return -1;
    int lineno = 0, rc = 0;
    memset(texts, 0, sizeof *texts);
    memset(videos, 0, sizeof *videos);
    for (size_t pos = 0; !rc && pos < len;) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        lineno++;
        size_t a = pos;
        while (a < end && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r')) a++;
        if (a < end) {
            json_error_t je;
            json_t *o = json_loadb(buf + a, end - a, 0, &je);
            json_t *v = o ? json_object_get(o, "video") : NULL, *c = o ? json_object_get(o, "caption") : NULL;
            json_t *cs = o ? json_object_get(o, "captions") : NULL;
            if (!o || !json_is_object(o)) { snprintf(err, cap, "%s:%d: %s", path, lineno, o ? "expected a JSON object" : je.text); rc = -1; }
            else if (!json_is_string(v) && !json_is_integer(v)) { snprintf(err, cap, "%s:%d: missing \"video\"", path, lineno); rc = -1; }
            else if (!json_is_string(c) && !json_is_array(cs)) { snprintf(err, cap, "%s:%d: missing \"caption\" or \"captions\"", path, lineno); rc = -1; }
            else {
                char vid[64];
                const char *vs = json_is_string(v) ? json_string_value(v) : (snprintf(vid, sizeof vid, "%lld", (long long)json_integer_value(v)), vid);
                size_t k = json_is_string(c) ? 1 : json_array_size(cs);
                for (size_t i = 0; !rc && i < k; i++) {
                    json_t *ci = json_is_string(c) ? c : json_array_get(cs, i);
                    if (!json_is_string(ci)) { snprintf(err, cap, "%s:%d: captions must be strings", path, lineno); rc = -1; break; }
                    char **t = realloc(texts->items, sizeof(char *) * (texts->n + 1));
                    char **vv = realloc(videos->items, sizeof(char *) * (videos->n + 1));
                    if (t) texts->items = t;
                    if (vv) videos->items = vv;
                    if (!t || !vv) { snprintf(err, cap, "out of memory"); rc = -1; break; }
                    texts->items[texts->n++] = strdup(json_string_value(ci));
                    videos->items[videos->n++] = strdup(vs);
                }
            }
            json_decref(o);
        }
        pos = end + 1;
    }
    free(buf);
    if (!rc && !texts->n) { snprintf(err, cap, "%s: no captions", path); rc = -1; }
    return rc;
}

int cmd_encode_text(int argc, char **argv)
{
    static const struct option opts[] = {
        {"text-model", 1, 0, 'm'}, {"classes", 1, 0, 'c'}, {"captions", 1, 0, 'p'}, {"templates", 1, 0, 't'},
        {"no-normalize", 0, 0, 'N'}, {"batch", 1, 0, 'b'}, {"threads", 1, 0, 'T'}, {"output", 1, 0, 'o'},
        {"vocab", 1, 0, 'v'}, {"hf-vocab", 1, 0, 'j'}, {"hf-merges", 1, 0, 'k'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *classes = NULL, *captions = NULL, *templates = NULL, *out = NULL;
    TokenizerSource src = {0};
    int normalize = 1, batch = 64, threads = 0, c;
    while ((c = getopt_long(argc, argv, "m:c:p:t:Nb:T:o:v:j:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'c': classes = optarg; break;
        case 'p': captions = optarg; break;
        case 't': templates = optarg; break;
        case 'N': normalize = 0; break;
        case 'b': if (cli_parse_int(optarg, 1, 1 << 16, &batch)) { cli_error(TOOL, NULL, "--batch needs a positive integer"); return 2; } break;
        case 'T': if (cli_parse_int(optarg, 1, 1024, &threads)) { cli_error(TOOL, NULL, "--threads needs a positive integer"); return 2; } break;
        case 'o': out = optarg; break;
        case 'v': src.gz = optarg; break;
        case 'j': src.hf_vocab = optarg; break;
        case 'k': src.hf_merges = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!model || !out || (!classes && !captions) || optind != argc) {
        cli_error(TOOL, NULL, !model ? "missing --text-model" : !out ? "missing -o OUT.safetensors"
                              : optind != argc ? "unexpected argument" : "give --classes and/or --captions");
        return 2;
    }
    char err[1024];
    Encoder e = {.batch = batch};
    StringList names = {0}, tmpl = {0}, caps = {0}, vids = {0};
    float *cls_feat = NULL, *cap_feat = NULL, *prompt_feat = NULL;
    char **prompts = NULL;
    size_t n_prompts = 0;
    int rc = 1;
    double t0 = cli_now_ms();
    if (!(e.tok = tokenizer_open(&src, err, sizeof err))) goto fail;
    if (classes) {
        if (prompts_load_classes(classes, &names, err, sizeof err)) goto fail;
        if (templates ? prompts_load_templates(templates, &tmpl, err, sizeof err) : (prompts_default_templates(&tmpl), 0)) goto fail;
        for (size_t i = 0; normalize && i < names.n; i++) {
            char *nn = prompts_normalize_class(names.items[i]);
            if (!nn) goto oom;
            free(names.items[i]);
            names.items[i] = nn;
        }
    }
    if (captions && load_captions(captions, &caps, &vids, err, sizeof err)) goto fail;
    if (encoder_open(&e, model, threads, err, sizeof err)) goto fail;
    size_t D = (size_t)e.dim;
    if (classes) {
        n_prompts = names.n * tmpl.n;
        prompts = calloc(n_prompts, sizeof *prompts);
        prompt_feat = malloc(sizeof(float) * n_prompts * D);
        cls_feat = calloc(names.n * D, sizeof(float));
        if (!prompts || !prompt_feat || !cls_feat) goto oom;
        for (size_t i = 0; i < names.n; i++)
            for (size_t k = 0; k < tmpl.n; k++)
                if (!(prompts[i * tmpl.n + k] = prompts_fill(tmpl.items[k], names.items[i]))) goto oom;
        if (encode_texts(&e, prompts, n_prompts, prompt_feat, err, sizeof err)) goto fail;
        for (size_t i = 0; i < names.n; i++) {
            float *f = cls_feat + i * D;
            for (size_t k = 0; k < tmpl.n; k++)
                for (size_t d = 0; d < D; d++) f[d] += prompt_feat[(i * tmpl.n + k) * D + d];
            for (size_t d = 0; d < D; d++) f[d] /= (float)tmpl.n;
            l2_normalize(f, e.dim);
        }
    }
    if (captions) {
        if (!(cap_feat = malloc(sizeof(float) * caps.n * D))) goto oom;
        if (encode_texts(&e, caps.items, caps.n, cap_feat, err, sizeof err)) goto fail;
    }
    {
        NamedTensor nt[2];
        MetadataEntry md[5];
        int n_t = 0, n_md = 0;
        int64_t cd[2] = {(int64_t)names.n, (int64_t)D}, pd[2] = {(int64_t)caps.n, (int64_t)D};
        Tensor *ct = classes ? tensor_borrow(DT_F32, 2, cd, cls_feat) : NULL, *pt = captions ? tensor_borrow(DT_F32, 2, pd, cap_feat) : NULL;
        char *jn = classes ? json_list(names.items, names.n) : NULL, *jt = classes ? json_list(tmpl.items, tmpl.n) : NULL;
        char *jv = captions ? json_list(vids.items, vids.n) : NULL;
        if (ct) { nt[n_t++] = (NamedTensor){"class_features", ct}; md[n_md++] = (MetadataEntry){"classes", jn}; md[n_md++] = (MetadataEntry){"templates", jt}; }
        if (pt) { nt[n_t++] = (NamedTensor){"caption_features", pt}; md[n_md++] = (MetadataEntry){"caption_videos", jv}; }
        md[n_md++] = (MetadataEntry){"text_model", model};
        md[n_md++] = (MetadataEntry){"normalization", "l2"};
        int bad = (classes && (!ct || !jn || !jt)) || (captions && (!pt || !jv));
        int wr = bad ? -1 : safetensors_save(out, nt, n_t, md, n_md, err, sizeof err);
        if (bad) snprintf(err, sizeof err, "out of memory");
        tensor_free(ct);
        tensor_free(pt);
        free(jn);
        free(jt);
        free(jv);
        if (wr) goto fail;
    }
    fprintf(stderr, "encode-text: %zu classes x %zu templates, %zu captions, D=%d, %.0f ms -> %s\n", names.n, tmpl.n,
            caps.n, e.dim, cli_now_ms() - t0, out);
    rc = 0;
    goto done;
oom:
    snprintf(err, sizeof err, "out of memory");
fail:
    cli_error(TOOL, NULL, err);
done:
    for (size_t i = 0; prompts && i < n_prompts; i++) free(prompts[i]);
    free(prompts);
    free(prompt_feat);
    free(cls_feat);
    free(cap_feat);
    string_list_free(&names);
    string_list_free(&tmpl);
    string_list_free(&caps);
    string_list_free(&vids);
    session_free(e.s);
    graph_free(e.g);
    clip_tokenizer_free(e.tok);
    return rc;
}
