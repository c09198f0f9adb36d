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
#include "../runtime/cpu/session.h"
#include "../runtime/safetensors.h"
#include "cli.h"
#include "commands.h"
#include "../runtime/eval/text_features.h"

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
    "  --full-context      every batch at the model's whole context, in the given order\n"
    "                      (default: texts sorted by length, each batch cut after its\n"
    "                      longest text's end-of-text token: the same features, bit for\n"
    "                      bit, for a causal encoder pooled at that token; checked)\n"
    "  --threads N         BLAS threads\n"
    CLI_COMPILE_HELP
    "  --vocab GZ | --hf-vocab JSON --hf-merges TXT   tokenizer vocabulary\n"
    "Output tensors: class_features [C, D], caption_features [N, D]; f32, unit L2 norm.\n";

static char *json_list(char *const *items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(items[i]));
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

int cmd_encode_text(int argc, char **argv)
{
    static const struct option opts[] = {
        {"text-model", 1, 0, 'm'}, {"classes", 1, 0, 'c'}, {"captions", 1, 0, 'p'}, {"templates", 1, 0, 't'},
        {"no-normalize", 0, 0, 'N'}, {"batch", 1, 0, 'b'}, {"full-context", 0, 0, 'F'}, {"threads", 1, 0, 'T'}, {"output", 1, 0, 'o'},
        {"vocab", 1, 0, 'v'}, {"hf-vocab", 1, 0, 'j'}, {"hf-merges", 1, 0, 'k'}, CLI_COMPILE_OPTIONS, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *classes = NULL, *captions = NULL, *templates = NULL, *out = NULL;
    TokenizerSource src = {0};
    int normalize = 1, batch = 64, threads = 0, full_context = 0, c;
    CompileOptions co = {.precision = PRECISION_AUTO};
    while ((c = getopt_long(argc, argv, "m:c:p:t:Nb:FT:o:v:j:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'c': classes = optarg; break;
        case 'p': captions = optarg; break;
        case 't': templates = optarg; break;
        case 'N': normalize = 0; break;
        case 'F': full_context = 1; break;
        case 'b': if (cli_parse_int(optarg, 1, 1 << 16, &batch)) { cli_error(TOOL, NULL, "--batch needs a positive integer"); return 2; } break;
        case 'T': if (cli_parse_int(optarg, 1, 1024, &threads)) { cli_error(TOOL, NULL, "--threads needs a positive integer"); return 2; } break;
        case 'o': out = optarg; break;
        case 'v': src.gz = optarg; break;
        case 'j': src.hf_vocab = optarg; break;
        case 'k': src.hf_merges = optarg; break;
        case CLI_OPT_TARGET:
        case CLI_OPT_PRECISION:
            if (cli_compile_arg(TOOL, c, optarg, &co)) return 2;
            break;
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
    Encoder e = {.batch = batch, .full_context = full_context};
    StringList names = {0}, tmpl = {0}, caps = {0}, vids = {0};
    float *cls_feat = NULL, *cap_feat = NULL;
    int rc = 1;
    double t0 = now_ms();
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
    co.threads = threads;
    if (encoder_open(&e, model, &co, err, sizeof err)) goto fail;
    size_t D = (size_t)e.dim;
    if (classes) {
        if (!(cls_feat = malloc(sizeof(float) * (names.n ? names.n : 1) * D))) goto oom;
        if (class_features(&e, &names, &tmpl, cls_feat, err, sizeof err)) goto fail;
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
    fprintf(stderr, "encode-text: %zu classes x %zu templates, %zu captions, D=%d, %.0f ms, %.1f%% of the token positions -> %s\n",
            names.n, tmpl.n, caps.n, e.dim, now_ms() - t0,
            e.positions_full ? 100.0 * (double)e.positions / (double)e.positions_full : 100.0, out);
    rc = 0;
    goto done;
oom:
    snprintf(err, sizeof err, "out of memory");
fail:
    cli_error(TOOL, NULL, err);
done:
    free(cls_feat);
    free(cap_feat);
    string_list_free(&names);
    string_list_free(&tmpl);
    string_list_free(&caps);
    string_list_free(&vids);
    encoder_close(&e);
    clip_tokenizer_free(e.tok);
    return rc;
}
