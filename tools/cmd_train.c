/* cmd_train.c — `vclip-run train`: Open-VCLIP fine-tuning of an image
 * encoder on a video list (DESIGN.md §2): VCLIP's temporal attention, IWR,
 * SWA, the final patch, and the caption loss when captions are given.  The
 * loop itself is runtime/train/trainer.c; this file parses options, opens
 * the class/caption features and feeds batches from the FFmpeg loader. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../onnx/onnx_io.h"
#include "../runtime/data/loader.h"
#include "../runtime/data/shard.h"
#include "../runtime/data/preprocess.h"
#include "../runtime/safetensors.h"
#include <jansson.h>
#include "../runtime/train/trainer.h"
#include "cli.h"
#include "commands.h"
#include "../runtime/eval/evaluator.h"
#include "../runtime/eval/text_features.h"

#define TOOL "vclip-run train"

static const char *usage =
    "usage: vclip-run train --visual VISUAL.onnx --classes CLASSES --train-list TRAIN.csv --root DIR [options]\n"
    "  --visual M          the CLIP image encoder to fine-tune (ONNX; its weights are θ_CLIP), or a\n"
    "                      checkpoint/weights file of an earlier run: its weights start this one, on\n"
    "                      the encoder recorded in it\n"
    "  --init W            start from these weights (.safetensors: a checkpoint or weights file)\n"
    "  --classes F         class features (.safetensors from encode-text) or a class list with --text-model\n"
    "  --text-model T      text encoder for --classes lists and --captions\n"
    "  --captions F.jsonl  {\"video\": ID, \"caption\": TEXT} per line (ID: the list's path, with or without\n"
    "                      extension); adds the caption contrastive loss (weight --caption-weight, 4)\n"
    "  --out DIR           checkpoint.safetensors, metrics.jsonl, weights.safetensors (default train-out)\n"
    "  --frames T --stride S --temporal-window W   clip sampling and attention (8, 16, 1)\n"
    "  --batch N --epochs N      videos per step (8), epochs (22)\n"
    "  --lr X --warmup-epochs N  peak LR (3.33e-6 * batch / 64: linear scaling of the paper's 64-video\n"
    "                      batch), warm-up from LR/100 (2 epochs), cosine decay to LR/100\n"
    "  --clip-norm X       gradient L2-norm clipping (1.0; 0 = off)\n"
    "  --alpha LO:HI --beta B   IWR: alpha ~ U(LO, HI) (0:0.6), loss weight of the interpolated forward (0.5)\n"
    "  --iwr-gradient released|exact   released (default): the gradient at the interpolated weights is added\n"
    "                      as is, as the paper's code does; exact: times (1 - alpha), the chain rule\n"
    "  --swa-start E       average the weights of epochs E.. to the end, counted from 1 (default 2: the\n"
    "                      released weight_average_tool.py averages checkpoints 2..22); 0 = no SWA\n"
    "  --patch-ratio R     final weights R*θ_CLIP + (1-R)*θ (0.5; 0 = none)\n"
    "  --plain             plain fine-tuning: no IWR, no SWA, no patch\n"
    "  --logit-scale X     log of the (trained) logit scale at the start (4.6052 = ln 100)\n"
    "  --save-every N      also checkpoint every N steps (default: at each epoch's end)\n"
    "  --keep-epochs       also write each epoch's weights to OUT/epoch-N.safetensors\n"
    "  --resume            continue from OUT/checkpoint.safetensors (same options)\n"
    "  --seed S --workers N --threads N   randomness (0), decoding threads (2), compute threads\n"
    "  --target cpu        where it trains (cuda: device 0, parameters and AdamW there)\n"
    "  --precision P       the step's GEMMs: fp32 (the default on the CPU), bf16 (the default on cuda;\n"
    "                      on the CPU it needs AVX512-BF16, and runs on AMX where there is one) or fp16\n"
    "                      (cuda, with dynamic loss scaling); master weights, AdamW, sums, softmax, norms\n"
    "                      and losses stay fp32\n"
    "  --loss-scale S      dynamic loss scaling from S (default 65536 with fp16, off otherwise): the\n"
    "                      gradients are taken of S x loss and divided by S in the update; a step whose\n"
    "                      gradients overflow is skipped and halves S, 2000 good steps in a row double it\n"
    "  --recompute         each transformer block keeps only its input for the backward pass, which\n"
    "                      runs the block's forward again: ViT-B/32's activations take about a third of\n"
    "                      the memory, for about 15% more time per step (docs/training.md)\n"
    "  --quiet             no progress output\n"
    CLI_COMM_TIMEOUT_HELP
    "  --bucket-mb N       data parallel: gradients are all-reduced in buckets of about N MB (25)\n"
    "Non-finite losses or gradients skip the step; 5 in a row stop the run (the last checkpoint stays).\n"
    "Data parallel: mpirun -np N vclip-run train ... trains on N processes (rank, size and local rank\n"
    "from the launcher); --batch is the global batch, N must divide it, and each rank takes its shard\n"
    "of every epoch (docs/distributed.md).\n";

typedef struct {
    LoaderConfig lc;
    Loader *l;
    Dataset ds;
    float *captions;      /* [items, D] or NULL */
    int64_t dim, T, crop;
} FileSource;

static int files_begin(BatchSource *s, int64_t epoch, int64_t skip, char *err, size_t cap)
{
    FileSource *f = s->ctx;
    loader_stop(f->l);
    f->lc.epoch = (int)epoch;
    f->lc.start = (size_t)(skip * f->lc.batch);
    f->l = loader_start(&f->lc, err, cap);
    return f->l ? 0 : -1;
}

static int files_next(BatchSource *s, Tensor *video, Tensor *labels, Tensor *captions, char *err, size_t cap)
{
    FileSource *f = s->ctx;
    Batch b;
    int got = loader_next(f->l, &b);
    if (got < 0) { snprintf(err, cap, "out of memory"); return -1; }
    if (got == 0) return 0;
    if (b.n < f->lc.batch) { batch_free(&b); return 0; } /* the last partial batch is dropped */
    size_t clip = (size_t)(f->T * 3 * f->crop * f->crop);
    for (int i = 0; i < b.n; i++) {
        normalize_clip(b.pixels + (size_t)i * (size_t)(f->T * f->crop * f->crop * 3), (int)f->T, (int)f->crop,
                       (float *)video->data + (size_t)i * clip);
        ((int64_t *)labels->data)[i] = b.labels[i];
        if (captions) memcpy((float *)captions->data + i * f->dim, f->captions + b.items[i] * (size_t)f->dim, sizeof(float) * (size_t)f->dim);
    }
    batch_free(&b);
    return 1;
}

/* caption features per dataset item, by matching IDs to list paths */
static float *caption_features(Evaluator *ev, const char *path, const char *root, const Dataset *ds, char *err, size_t cap)
{
    StringList texts = {0}, videos = {0};
    if (load_captions(path, &texts, &videos, err, cap)) return NULL;
    int64_t D = ev->text.dim;
    float *feats = calloc(texts.n * (size_t)D + 1, sizeof(float)), *per = calloc(ds->n * (size_t)D + 1, sizeof(float));
    int *count = calloc(ds->n + 1, sizeof(int));
    size_t rl = strlen(root);
    if (!feats || !per || !count || encode_texts(&ev->text, texts.items, texts.n, feats, err, cap)) goto fail;
    for (size_t i = 0; i < ds->n; i++) {
        const char *rel = ds->items[i].path + (strncmp(ds->items[i].path, root, rl) == 0 ? rl : 0);
        while (*rel == '/') rel++;
        const char *dot = strrchr(rel, '.');
        size_t stem = dot ? (size_t)(dot - rel) : strlen(rel);
        for (size_t j = 0; j < videos.n; j++) {
            const char *id = videos.items[j];
            if (strcmp(id, rel) && !(strlen(id) == stem && !strncmp(id, rel, stem))) continue;
            for (int64_t d = 0; d < D; d++) per[i * (size_t)D + d] += feats[j * (size_t)D + d];
            count[i]++;
        }
        if (!count[i]) { snprintf(err, cap, "%s: no caption for '%s'", path, rel); goto fail; }
        /* several captions: the mean feature, renormalized */
        double n2 = 0;
        for (int64_t d = 0; d < D; d++) n2 += (double)per[i * D + d] * per[i * D + d];
        for (int64_t d = 0; d < D; d++) per[i * D + d] = (float)(per[i * D + d] / (n2 > 0 ? sqrt(n2) : 1));
    }
    free(feats); free(count);
    string_list_free(&texts); string_list_free(&videos);
    return per;
fail:
    free(feats); free(per); free(count);
    string_list_free(&texts); string_list_free(&videos);
    return NULL;
}

/* The ONNX encoder recorded in a checkpoint's config (malloc'd), or NULL with a message. */
static char *checkpoint_visual(const char *path, char *err, size_t cap)
{
    char **names, *cfg = NULL, *visual = NULL;
    int n;
    if (safetensors_names(path, &names, &n, err, cap)) return NULL;
    Tensor *t = n ? safetensors_load(path, names[0], "config", &cfg, err, cap) : NULL;
    tensor_free(t);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    json_t *o = cfg ? json_loads(cfg, 0, NULL) : NULL;
    const char *v = json_string_value(json_object_get(o, "visual"));
    if (v) visual = strdup(v);
    else snprintf(err, cap, "%s records no encoder: give the ONNX encoder with --visual and this file with --init", path);
    json_decref(o);
    free(cfg);
    return visual;
}

static int parse_range(const char *s, double *lo, double *hi)
{
    char *end;
    *lo = strtod(s, &end);
    if (*end != ':') return -1;
    *hi = strtod(end + 1, &end);
    return (*end || *lo < 0 || *hi > 1 || *lo > *hi) ? -1 : 0;
}

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"visual", 1, 0, 'v'}, {"init", 1, 0, 'I'}, {"classes", 1, 0, 'c'}, {"text-model", 1, 0, 'm'}, {"captions", 1, 0, 'C'},
        {"train-list", 1, 0, 'l'}, {"root", 1, 0, 'r'}, {"out", 1, 0, 'o'}, {"frames", 1, 0, 'T'}, {"stride", 1, 0, 'S'},
        {"temporal-window", 1, 0, 'w'}, {"batch", 1, 0, 'b'}, {"epochs", 1, 0, 'e'}, {"lr", 1, 0, 'L'},
        {"warmup-epochs", 1, 0, 'W'}, {"clip-norm", 1, 0, 'n'}, {"alpha", 1, 0, 'a'}, {"beta", 1, 0, 'B'},
        {"iwr-gradient", 1, 0, 'g'}, {"swa-start", 1, 0, 's'}, {"patch-ratio", 1, 0, 'p'}, {"plain", 0, 0, 'P'},
        {"logit-scale", 1, 0, 'x'}, {"save-every", 1, 0, 'E'}, {"resume", 0, 0, 'R'}, {"seed", 1, 0, 'd'},
        {"workers", 1, 0, 'k'}, {"threads", 1, 0, 't'}, {"quiet", 0, 0, 'q'}, {"keep-epochs", 0, 0, 'K'}, {"caption-weight", 1, 0, 'Y'},
        {"comm-timeout", 1, 0, 'Z'}, {"bucket-mb", 1, 0, 'U'}, {"recompute", 0, 0, 'Q'}, {"loss-scale", 1, 0, 'J'}, CLI_COMPILE_OPTIONS, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *visual = NULL, *init = NULL, *classes = NULL, *text_model = NULL, *captions = NULL, *list = NULL, *root = NULL,
               *out = "train-out";
    int frames = 8, stride = 16, window = 1, batch = 8, epochs = 22, warmup = 2, swa_start = 2, plain = 0, save_every = 0;
    int resume = 0, keep_epochs = 0, workers = 2, threads = 0, quiet = 0, exact = 0, seed = 0, precision_given = 0, recompute = 0, c;
    double comm_timeout = 300, bucket_mb = 25;
    CompileOptions co = {0};
    double loss_scale = 0, lr = -1, clip_norm = 1.0, alo = 0, ahi = 0.6, beta = 0.5, patch = 0.5, logit_scale = 4.6052, lambda = 4.0;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'v': visual = optarg; break;
        case 'I': init = optarg; break;
        case 'c': classes = optarg; break;
        case 'm': text_model = optarg; break;
        case 'C': captions = optarg; break;
        case 'l': list = optarg; break;
        case 'r': root = optarg; break;
        case 'o': out = optarg; break;
        case 'T': if (cli_parse_int(optarg, 1, 64, &frames)) return cli_usage_error(TOOL, "--frames needs 1..64"); break;
        case 'S': if (cli_parse_int(optarg, 1, 1000, &stride)) return cli_usage_error(TOOL, "--stride needs 1..1000"); break;
        case 'w': if (cli_parse_int(optarg, 0, 64, &window)) return cli_usage_error(TOOL, "--temporal-window needs 0..64"); break;
        case 'b': if (cli_parse_int(optarg, 1, 4096, &batch)) return cli_usage_error(TOOL, "--batch needs 1..4096"); break;
        case 'e': if (cli_parse_int(optarg, 1, 100000, &epochs)) return cli_usage_error(TOOL, "--epochs needs a positive integer"); break;
        case 'W': if (cli_parse_int(optarg, 0, 100000, &warmup)) return cli_usage_error(TOOL, "--warmup-epochs needs 0 or more"); break;
        case 's': if (cli_parse_int(optarg, 0, 100000, &swa_start)) return cli_usage_error(TOOL, "--swa-start needs 0 or an epoch"); break;
        case 'E': if (cli_parse_int(optarg, 0, 1 << 30, &save_every)) return cli_usage_error(TOOL, "--save-every needs 0 or more"); break;
        case 'd': if (cli_parse_int(optarg, 0, 1 << 30, &seed)) return cli_usage_error(TOOL, "--seed needs 0 or more"); break;
        case 'k': if (cli_parse_int(optarg, 1, 64, &workers)) return cli_usage_error(TOOL, "--workers needs 1..64"); break;
        case 't': if (cli_parse_int(optarg, 1, 256, &threads)) return cli_usage_error(TOOL, "--threads needs 1..256"); break;
        case 'L': lr = strtod(optarg, &end); if (*end || !(lr > 0)) return cli_usage_error(TOOL, "--lr needs a positive number"); break;
        case 'n': clip_norm = strtod(optarg, &end); if (*end || clip_norm < 0) return cli_usage_error(TOOL, "--clip-norm needs 0 or more"); break;
        case 'a': if (parse_range(optarg, &alo, &ahi)) return cli_usage_error(TOOL, "--alpha needs LO:HI within 0..1"); break;
        case 'B': beta = strtod(optarg, &end); if (*end || beta < 0) return cli_usage_error(TOOL, "--beta needs 0 or more"); break;
        case 'Y': lambda = strtod(optarg, &end); if (*end || lambda < 0) return cli_usage_error(TOOL, "--caption-weight needs 0 or more"); break;
        case 'p': patch = strtod(optarg, &end); if (*end || patch < 0 || patch > 1) return cli_usage_error(TOOL, "--patch-ratio needs 0..1"); break;
        case 'x': logit_scale = strtod(optarg, &end); if (*end) return cli_usage_error(TOOL, "--logit-scale needs a number"); break;
        case 'g':
            if (!strcmp(optarg, "exact")) exact = 1;
            else if (!strcmp(optarg, "released")) exact = 0;
            else return cli_usage_error(TOOL, "--iwr-gradient is released or exact");
            break;
        case 'Z': comm_timeout = strtod(optarg, &end); if (*end || !(comm_timeout > 0)) return cli_usage_error(TOOL, "--comm-timeout needs seconds > 0"); break;
        case 'U': bucket_mb = strtod(optarg, &end); if (*end || !(bucket_mb >= 0.001 && bucket_mb <= 4096)) return cli_usage_error(TOOL, "--bucket-mb needs 0.001..4096"); break;
        case 'P': plain = 1; break;
        case 'R': resume = 1; break;
        case 'q': quiet = 1; break;
        case 'K': keep_epochs = 1; break;
        case 'Q': recompute = 1; break;
        case 'J': loss_scale = strtod(optarg, &end); if (*end || !(loss_scale >= 1 && loss_scale <= 1e30)) return cli_usage_error(TOOL, "--loss-scale needs 1..1e30"); break;
        case CLI_OPT_TARGET:
        case CLI_OPT_PRECISION:
            precision_given |= c == CLI_OPT_PRECISION;
            if (cli_compile_arg(TOOL, c, optarg, &co)) return 2;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: return cli_usage_error(TOOL, "unknown option (see --help)");
        }
    }
    if (optind < argc) return cli_usage_error(TOOL, "unexpected argument (see --help)");
    /* the target before anything else, on the device this rank will use (asking makes the context) */
    char cerr[512];
    LaunchInfo li;
    launch_info(&li);
    if (model_select_device(co.target, li.local_rank, cerr, sizeof cerr) || trainer_check_target(co.target, cerr, sizeof cerr)) {
        cli_error(TOOL, NULL, cerr);
        return 1;
    }
    if (!precision_given && co.target == TARGET_CUDA) co.precision = PRECISION_BF16; /* the default on a GPU */
    if (co.precision == PRECISION_AUTO) { cli_error(TOOL, NULL, "--precision auto is for inference: train in fp32 or bf16"); return 1; }
    co.threads = threads;
    if (!visual || !classes || !list || !root) return cli_usage_error(TOOL, "--visual, --classes, --train-list and --root are required");
    if (captions && !text_model) return cli_usage_error(TOOL, "--captions needs --text-model to encode them");
    char err[1024];
    char *recorded = NULL;
    size_t vl = strlen(visual);
    if (vl > 12 && !strcmp(visual + vl - 12, ".safetensors")) { /* --visual CKPT */
        if (init) return cli_usage_error(TOOL, "--visual is already a weights file: --init is not needed");
        if (!(recorded = checkpoint_visual(visual, err, sizeof err))) { cli_error(TOOL, NULL, err); return 1; }
        init = visual;
        visual = recorded;
    }
    char tool[64];
    Comm *comm = cli_comm_open(TOOL, comm_timeout, co.target, tool, sizeof tool);
    if (!comm) { free(recorded); return 1; }
    int ranks = comm_size(comm), rank = comm_rank(comm);
    if (rank) quiet = 1; /* rank 0 reports */
    int rc = 1;
    Evaluator ev;
    evaluator_init(&ev);
    StringList names = {0};
    Tensor *cf = NULL;
    FileSource fs = {0};
    if (text_model && evaluator_open_text(&ev, text_model, &co, err, sizeof err)) { cli_error(tool, text_model, err); goto done; }
    if (!(cf = class_features_for(&ev, classes, &names, err, sizeof err))) { cli_error(tool, classes, err); goto done; }
    if (dataset_load_csv(list, root, &fs.ds, err, sizeof err)) { cli_error(tool, list, err); goto done; }
    for (size_t i = 0; i < fs.ds.n; i++)
        if (fs.ds.items[i].label < 0 || fs.ds.items[i].label >= cf->dims[0]) {
            fprintf(stderr, "%s: %s: item %zu has label %d, but there are %lld classes\n", tool, list, i + 1, fs.ds.items[i].label, (long long)cf->dims[0]);
            goto done;
        }
    if (fs.ds.n < (size_t)batch) { fprintf(stderr, "%s: %s: %zu videos, fewer than one batch of %d\n", tool, list, fs.ds.n, batch); goto done; }
    if (captions && !(fs.captions = caption_features(&ev, captions, root, &fs.ds, err, sizeof err))) { cli_error(tool, captions, err); goto done; }

    if (batch % ranks) {
        fprintf(stderr, "%s: --batch %d is the global batch: it must divide among the %d ranks\n", tool, batch, ranks);
        goto done;
    }
    TrainerConfig tc;
    trainer_defaults(&tc, batch, epochs); /* the learning rate follows the global batch */
    tc.graph.batch = batch / ranks;
    tc.comm = comm;
    tc.bucket_bytes = (size_t)(bucket_mb * (1 << 20));
    /* the crop is the encoder's input size */
    char msg[512];
    Graph *probe = onnx_load(visual, msg, sizeof msg);
    if (!probe) { cli_error(tool, visual, msg); goto done; }
    int64_t crop = probe->n_inputs == 1 && probe->inputs[0]->shape.rank == 4 ? probe->inputs[0]->shape.d[3].n : 0;
    graph_free(probe);
    if (crop < 1) { fprintf(stderr, "%s: %s: expected an image encoder with input [batch, 3, H, W]\n", tool, visual); goto done; }
    tc.graph.frames = frames;
    tc.graph.window = window;
    tc.graph.class_features = cf;
    tc.graph.logit_scale = (float)logit_scale;
    tc.graph.iwr = !plain;
    tc.graph.beta = (float)beta;
    tc.graph.exact_gradient = exact;
    tc.graph.captions = captions != NULL;
    tc.graph.caption_weight = (float)lambda;
    tc.graph.recompute = recompute;
    tc.loss_scale = loss_scale;
    tc.warmup_epochs = warmup;
    if (lr > 0) { tc.lr = lr; tc.lr_min = tc.lr_start = lr / 100; }
    tc.clip_norm = clip_norm;
    tc.alpha_lo = alo;
    tc.alpha_hi = ahi;
    tc.seed = (uint64_t)seed;
    tc.swa_start = plain || swa_start == 0 ? -1 : swa_start - 1;
    tc.patch_ratio = plain ? 0 : patch;
    tc.out_dir = out;
    tc.save_every = save_every;
    tc.keep_epochs = keep_epochs;
    tc.resume = resume;
    tc.progress = !quiet;
    tc.quiet = quiet;
    tc.threads = threads;
    tc.target = co.target;
    tc.precision = co.precision;
    tc.init = init;
    char config[2048];
    snprintf(config, sizeof config,
             "{\"visual\": \"%s\", \"train_list\": \"%s\", \"frames\": %d, \"window\": %d, \"batch\": %d, \"epochs\": %d, "
             "\"lr\": %g, \"iwr\": %d, \"iwr_gradient\": \"%s\", \"alpha\": [%g, %g], \"beta\": %g, \"swa_start\": %d, "
             "\"patch_ratio\": %g, \"captions\": %d, \"caption_weight\": %g, \"seed\": %d}",
             visual, list, frames, window, batch, epochs, tc.lr, !plain, exact ? "exact" : "released", alo, ahi, beta,
             plain ? 0 : swa_start, tc.patch_ratio, captions != NULL, lambda, seed);
    tc.config_json = config;
    sampling_defaults(&fs.lc.sampling);
    fs.lc.sampling.frames = frames;
    fs.lc.sampling.stride = stride;
    fs.lc.sampling.train = 1;
    fs.lc.sampling.crop_size = (int)crop;
    fs.lc.sampling.min_short = (int)crop;
    fs.lc.sampling.max_short = (int)(crop * 256 / 224);
    fs.lc.ds = &fs.ds;
    fs.lc.batch = batch / ranks;
    fs.lc.shard_rank = rank;
    fs.lc.shard_count = ranks;
    fs.lc.workers = workers;
    fs.lc.prefetch = 2 * fs.lc.batch;
    fs.lc.seed = (uint64_t)seed;
    fs.lc.shuffle = 1;
    fs.lc.replace_broken = 1;
    fs.lc.time_limit_s = 60;
    fs.T = frames;
    fs.crop = crop;
    fs.dim = cf->dims[1];
    BatchSource src = {files_begin, files_next, (int64_t)shard_steps(fs.ds.n, (size_t)batch), &fs};
    TrainResult res;
    if (trainer_run(visual, &tc, &src, &res, err, sizeof err)) { cli_error(tool, out, err); goto done; }
    if (!quiet)
        printf("trained %lld steps in %.1f s (%lld skipped); final loss %.4f\nweights: %s/weights.safetensors  "
               "checkpoint: %s/checkpoint.safetensors  metrics: %s/metrics.jsonl\n",
               (long long)res.steps, res.seconds, (long long)res.skipped, res.last_loss, out, out, out);
    if (!quiet && res.device_reduce)
        printf("gradients averaged on the device by NCCL over %d rank%s\n", ranks, ranks == 1 ? "" : "s");
    if (!quiet && ranks > 1 && !res.device_reduce)
        printf("data parallel: %d ranks (%s); %.2f MB of gradients per step in %d bucket%s; %.0f%% of the bytes started their "
               "all-reduce during the backward pass, on average %.1f ms before its end; rank 0 waited %.2f s in all after it\n",
               ranks, comm_name(comm), (double)res.grad_bytes / (1 << 20), res.buckets, res.buckets == 1 ? "" : "s",
               100 * res.overlapped, 1e3 * res.lead_seconds, res.comm_wait_seconds);
    rc = 0;
done:
    loader_stop(fs.l);
    dataset_free(&fs.ds);
    free(fs.captions);
    tensor_free(cf);
    string_list_free(&names);
    if (ev.has_text) evaluator_close_text(&ev);
    free(recorded);
    comm_close(comm, rc != 0);
    return rc;
}
