/* cmd_retrieval.c — `vclip-run retrieval`: text-to-video and video-to-text
 * retrieval (Recall@1/5/10, median and mean rank, MSR-VTT style).  A video's
 * feature is the normalized mean of its unit frame embeddings over frames and
 * test views; a caption's is the text encoder's unit feature.  With
 * --similarity and --owners it scores a saved similarity matrix instead. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../runtime/eval/retrieval.h"
#include "../runtime/eval/video_features.h"
#include "../runtime/npy.h"
#include "cli.h"
#include "commands.h"
#include "../runtime/eval/text_features.h"

#define TOOL "vclip-run retrieval"

static const char *usage =
    "usage: vclip-run retrieval --visual MODEL.onnx --text-model TEXT.onnx --captions FILE.jsonl --root DIR [options]\n"
    "       vclip-run retrieval --similarity S.npy --owners O.npy\n"
    "  --captions FILE     JSONL {\"video\": \"relative/path\", \"caption\": TEXT} (or \"captions\": [...]):\n"
    "                      one or more captions per video; the videos are read from --root\n"
    "  --views N --stride S --frames T --temporal-window W   as in eval\n"
    "  --similarity S.npy --owners O.npy   f32 [captions, videos] and each caption's video index\n"
    "  --save-similarity S.npy             write the caption x video similarity matrix\n"
    CLI_COMPILE_HELP
    "  --json              text_to_video / video_to_text: r1, r5, r10, median_rank, mean_rank\n"
    CLI_COMM_TIMEOUT_HELP
    "mpirun -np N vclip-run retrieval ... shares the videos among N processes; rank 0 prints and writes.\n"
    "Ranks are 1-based; ties put the lower index first.  Unreadable videos are left out with\n"
    "their captions and counted (n_skipped).\n";

static void report(const RetrievalMetrics *t, const RetrievalMetrics *v, size_t nc, size_t nv, size_t skipped, int json)
{
    if (json) {
        printf("{\"text_to_video\": {\"r1\": %.6f, \"r5\": %.6f, \"r10\": %.6f, \"median_rank\": %.1f, \"mean_rank\": %.4f}, "
               "\"video_to_text\": {\"r1\": %.6f, \"r5\": %.6f, \"r10\": %.6f, \"median_rank\": %.1f, \"mean_rank\": %.4f}, "
               "\"n_captions\": %zu, \"n_videos\": %zu, \"n_skipped\": %zu}\n", t->r1, t->r5, t->r10, t->median_rank,
               t->mean_rank, v->r1, v->r5, v->r10, v->median_rank, v->mean_rank, nc, nv, skipped);
        return;
    }
    printf("text->video  R@1 %5.1f  R@5 %5.1f  R@10 %5.1f  MdR %.1f  MnR %.1f\n", 100 * t->r1, 100 * t->r5, 100 * t->r10, t->median_rank, t->mean_rank);
    printf("video->text  R@1 %5.1f  R@5 %5.1f  R@10 %5.1f  MdR %.1f  MnR %.1f\n", 100 * v->r1, 100 * v->r5, 100 * v->r10, v->median_rank, v->mean_rank);
    printf("(%zu captions, %zu videos, %zu unreadable)\n", nc, nv, skipped);
}

static int from_saved(const char *sp, const char *op, int json)
{
    char err[1024];
    Tensor *s = npy_load(sp, err, sizeof err), *o = s ? npy_load(op, err, sizeof err) : NULL;
    size_t *owner = NULL;
    int rc = 1;
    if (!s || !o) { cli_error(TOOL, NULL, err); goto done; }
    if (s->dtype != DT_F32 || s->rank != 2 || o->rank != 1 || o->dims[0] != s->dims[0] || dtype_is_float(o->dtype)) {
        cli_error(TOOL, NULL, "similarity must be f32 [captions, videos] and owners integers [captions]");
        goto done;
    }
    size_t nc = (size_t)s->dims[0], nv = (size_t)s->dims[1];
    owner = malloc(sizeof(size_t) * (nc ? nc : 1));
    for (size_t i = 0; owner && i < nc; i++) {
        int64_t v = tensor_get_i64(o, (int64_t)i);
        if (v < 0 || (size_t)v >= nv) { fprintf(stderr, "%s: caption %zu belongs to video %lld, not one of 0..%zu\n", TOOL, i, (long long)v, nv - 1); goto done; }
        owner[i] = (size_t)v;
    }
    RetrievalMetrics t, v;
    retrieval_metrics(s->data, nc, nv, owner, &t, &v);
    report(&t, &v, nc, nv, 0, json);
    rc = 0;
done:
    free(owner);
    tensor_free(s);
    tensor_free(o);
    return rc;
}

int cmd_retrieval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"visual", 1, 0, 'V'}, {"text-model", 1, 0, 'm'}, {"captions", 1, 0, 'c'}, {"root", 1, 0, 'r'}, {"views", 1, 0, 'v'},
        {"stride", 1, 0, 'S'}, {"frames", 1, 0, 'T'}, {"temporal-window", 1, 0, 'W'}, {"similarity", 1, 0, 's'},
        {"owners", 1, 0, 'o'}, {"save-similarity", 1, 0, 'w'}, {"threads", 1, 0, 't'}, {"json", 0, 0, 'j'},
        {"comm-timeout", 1, 0, 'Z'}, CLI_COMPILE_OPTIONS, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *visual = NULL, *text_model = NULL, *captions = NULL, *root = ".", *sim_in = NULL, *owners = NULL, *sim_out = NULL;
    int frames = 8, window = 1, threads = 0, json = 0, c;
    double comm_timeout = 300;
    CompileOptions co = {.precision = PRECISION_AUTO};
    SamplingConfig sc;
    sampling_defaults(&sc);
    while ((c = getopt_long(argc, argv, "V:m:c:r:v:S:T:W:s:o:w:t:jh", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'V': visual = optarg; break;
        case 'm': text_model = optarg; break;
        case 'c': captions = optarg; break;
        case 'r': root = optarg; break;
        case 'v': bad = cli_parse_int(optarg, 1, 64, &sc.views); break;
        case 'S': bad = cli_parse_int(optarg, 1, 1 << 16, &sc.stride); break;
        case 'T': bad = cli_parse_int(optarg, 1, CLIP_MAX_FRAMES, &frames); break;
        case 'W': bad = cli_parse_int(optarg, 0, 64, &window); break;
        case 's': sim_in = optarg; break;
        case 'o': owners = optarg; break;
        case 'w': sim_out = optarg; break;
        case 'Z': comm_timeout = atof(optarg); bad = !(comm_timeout > 0); break;
        case 't': bad = cli_parse_int(optarg, 1, 1024, &threads); break;
        case 'j': json = 1; break;
        case CLI_OPT_TARGET:
        case CLI_OPT_PRECISION:
            if (cli_compile_arg(TOOL, c, optarg, &co)) return 2;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
        if (bad) { fprintf(stderr, "%s: bad value '%s'\n", TOOL, optarg ? optarg : ""); return 2; }
    }
    if (optind != argc) { cli_error(TOOL, NULL, "unexpected argument"); return 2; }
    if (sim_in || owners) {
        if (!sim_in || !owners) { cli_error(TOOL, NULL, "--similarity and --owners go together"); return 2; }
        return from_saved(sim_in, owners, json);
    }
    if (!visual || !text_model || !captions) { cli_error(TOOL, NULL, "needs --visual, --text-model and --captions"); return 2; }
    char err[1024];
    StringList texts = {0}, vids = {0};
    VideoModel vm;
    memset(&vm, 0, sizeof vm);
    Encoder enc = {.batch = 64};
    Dataset ds = {0};
    float *vf = NULL, *tf = NULL, *sim = NULL;
    char *ok = NULL;
    size_t *owner = NULL, *vid_of = NULL;
    int rc = 1;
    TokenizerSource src = {0};
    char tool[64];
    Comm *comm = cli_comm_open(TOOL, comm_timeout, co.target, tool, sizeof tool);
    if (!comm) return 1;
    if (load_captions(captions, &texts, &vids, err, sizeof err)) { cli_error(tool, NULL, err); goto done; }
    /* the videos, in order of first appearance */
    ds.items = calloc(vids.n, sizeof(DatasetItem));
    vid_of = malloc(sizeof(size_t) * vids.n);
    size_t *first = malloc(sizeof(size_t) * vids.n); /* the caption where each video first appears */
    if (!ds.items || !vid_of || !first) { free(first); cli_error(tool, NULL, "out of memory"); goto done; }
    for (size_t i = 0; i < vids.n; i++) {
        size_t v = 0;
        while (v < ds.n && strcmp(vids.items[first[v]], vids.items[i])) v++;
        if (v == ds.n) {
            first[v] = i;
            size_t len = strlen(root) + strlen(vids.items[i]) + 2;
            ds.items[v].path = malloc(len);
            if (!ds.items[v].path) { free(first); cli_error(tool, NULL, "out of memory"); goto done; }
            snprintf(ds.items[v].path, len, "%s/%s", root, vids.items[i]);
            ds.n++;
        }
        vid_of[i] = v;
    }
    free(first);
    co.threads = threads;
    if (video_model_open(&vm, visual, frames, window, &co, err, sizeof err)) { cli_error(tool, NULL, err); goto done; }
    if (!(enc.tok = tokenizer_open(&src, err, sizeof err)) || encoder_open(&enc, text_model, &co, err, sizeof err)) { cli_error(tool, NULL, err); goto done; }
    if (enc.dim != vm.D) { fprintf(stderr, "%s: text features have %d dims, video features %d\n", tool, enc.dim, vm.D); goto done; }
    sc.frames = vm.T;
    sc.crop_size = vm.size;
    int V = clips_per_video(&sc), D = vm.D;
    size_t per = (size_t)V * vm.T * D, skipped, decoded;
    vf = malloc(sizeof(float) * ds.n * per);
    tf = malloc(sizeof(float) * texts.n * D);
    ok = calloc(ds.n, 1);
    if (!vf || !tf || !ok) { cli_error(tool, NULL, "out of memory"); goto done; }
    FeatureCache none = {0};
    if (video_features_ranks(&vm, &ds, &sc, 4, 2, &none, comm, vf, ok, &skipped, &decoded, err, sizeof err)) { cli_error(tool, NULL, err); goto done; }
    if (encode_texts(&enc, texts.items, texts.n, tf, err, sizeof err)) { cli_error(tool, NULL, err); goto done; }
    /* video features: the normalized mean of the unit frame embeddings; keep readable videos only */
    size_t nv = 0, *new_index = malloc(sizeof(size_t) * ds.n);
    if (!new_index) { cli_error(tool, NULL, "out of memory"); goto done; }
    for (size_t v = 0; v < ds.n; v++) {
        new_index[v] = (size_t)-1;
        if (!ok[v]) continue;
        float *dst = vf + nv * D;
        double acc[4096];
        if (D > 4096) { cli_error(tool, NULL, "feature width above 4096"); free(new_index); goto done; }
        for (int d = 0; d < D; d++) acc[d] = 0;
        for (size_t k = 0; k < (size_t)V * vm.T; k++)
            for (int d = 0; d < D; d++) acc[d] += vf[v * per + k * D + d];
        for (int d = 0; d < D; d++) dst[d] = (float)acc[d];
        l2_normalize(dst, D);
        new_index[v] = nv++;
    }
    size_t nc = 0;
    owner = malloc(sizeof(size_t) * (texts.n ? texts.n : 1));
    sim = malloc(sizeof(float) * (texts.n ? texts.n : 1) * (nv ? nv : 1));
    if (!owner || !sim) { cli_error(tool, NULL, "out of memory"); free(new_index); goto done; }
    for (size_t i = 0; i < texts.n; i++) {
        if (new_index[vid_of[i]] == (size_t)-1) continue; /* its video is unreadable */
        owner[nc] = new_index[vid_of[i]];
        for (size_t v = 0; v < nv; v++) {
            double dot = 0;
            for (int d = 0; d < D; d++) dot += (double)tf[i * D + d] * vf[v * D + d];
            sim[nc * nv + v] = (float)dot;
        }
        nc++;
    }
    free(new_index);
    if (sim_out && comm_rank(comm) == 0) {
        int64_t sd[2] = {(int64_t)nc, (int64_t)nv};
        Tensor *st = tensor_borrow(DT_F32, 2, sd, sim);
        if (!st || npy_save(sim_out, st, err, sizeof err)) { cli_error(tool, NULL, st ? err : "out of memory"); tensor_free(st); goto done; }
        tensor_free(st);
    }
    RetrievalMetrics t, v;
    retrieval_metrics(sim, nc, nv, owner, &t, &v);
    report(&t, &v, nc, nv, skipped, json);
    rc = 0;
done:
    string_list_free(&texts);
    string_list_free(&vids);
    video_model_close(&vm);
    encoder_close(&enc);
    clip_tokenizer_free(enc.tok);
    dataset_free(&ds);
    free(vf);
    free(tf);
    free(sim);
    free(ok);
    free(owner);
    free(vid_of);
    comm_close(comm, rc != 0);
    return rc;
}
