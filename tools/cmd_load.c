/* cmd_load.c — `vclip-run load LIST.csv --root DIR`: runs the data loader
 * over a dataset list as training or evaluation would, and reports clips/s,
 * the unreadable videos (skipped or replaced) and, with --digest, a hash of
 * every batch, so that runs can be compared (the same seed must give the
 * same digest whatever --workers). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include "../runtime/data/loader.h"
#include "cli.h"
#include "commands.h"
#include "../ir/base.h"

#define TOOL "vclip-run load"

static const char *usage =
    "usage: vclip-run load LIST.csv --root DIR [options]\n"
    "  --mode test|train  test (default): 3 views x 1 crop per video, in list order;\n"
    "                     train: one random clip per video, shuffled\n"
    "  --frames T --stride S --views N --crops 1|3 --crop-size N   sampling (8, 16, 3, 1, 224)\n"
    "  --batch N          videos per batch (default 8)\n"
    "  --workers N        decoding threads (default 2)\n"
    "  --prefetch N       videos decoded ahead (default 2 x batch)\n"
    "  --seed N --epoch N randomness and order\n"
    "  --skip-broken      drop unreadable videos (default: replace them with another video)\n"
    "  --time-limit S     per file (default 60)\n"
    "  --digest           print a hash of all batches\n"
    "  --json             one JSON object instead of text\n";

int cmd_load(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", 1, 0, 'r'}, {"mode", 1, 0, 'm'}, {"frames", 1, 0, 'T'}, {"stride", 1, 0, 'S'}, {"views", 1, 0, 'v'},
        {"crops", 1, 0, 'c'}, {"crop-size", 1, 0, 'z'}, {"batch", 1, 0, 'b'}, {"workers", 1, 0, 'w'},
        {"prefetch", 1, 0, 'p'}, {"seed", 1, 0, 's'}, {"epoch", 1, 0, 'e'}, {"skip-broken", 0, 0, 'K'},
        {"time-limit", 1, 0, 'l'}, {"digest", 0, 0, 'd'}, {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *root = ".";
    LoaderConfig lc = {.batch = 8, .workers = 2, .replace_broken = 1, .time_limit_s = 60};
    sampling_defaults(&lc.sampling);
    int prefetch = 0, seed = 0, epoch = 0, tl = 60, digest = 0, json = 0, c;
    while ((c = getopt_long(argc, argv, "r:m:T:S:v:c:z:b:w:p:s:e:Kl:djh", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'r': root = optarg; break;
        case 'm': lc.sampling.train = !strcmp(optarg, "train"); bad = !lc.sampling.train && strcmp(optarg, "test"); break;
        case 'T': bad = cli_parse_int(optarg, 1, CLIP_MAX_FRAMES, &lc.sampling.frames); break;
        case 'S': bad = cli_parse_int(optarg, 1, 1 << 16, &lc.sampling.stride); break;
        case 'v': bad = cli_parse_int(optarg, 1, 64, &lc.sampling.views); break;
        case 'c': bad = cli_parse_int(optarg, 1, 3, &lc.sampling.crops) || lc.sampling.crops == 2; break;
        case 'z': bad = cli_parse_int(optarg, 8, 4096, &lc.sampling.crop_size); break;
        case 'b': bad = cli_parse_int(optarg, 1, 4096, &lc.batch); break;
        case 'w': bad = cli_parse_int(optarg, 1, 256, &lc.workers); break;
        case 'p': bad = cli_parse_int(optarg, 1, 1 << 16, &prefetch); break;
        case 's': bad = cli_parse_int(optarg, 0, 2147483647, &seed); break;
        case 'e': bad = cli_parse_int(optarg, 0, 1 << 20, &epoch); break;
        case 'K': lc.replace_broken = 0; break;
        case 'l': bad = cli_parse_int(optarg, 1, 86400, &tl); break;
        case 'd': digest = 1; break;
        case 'j': json = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
        if (bad) { fprintf(stderr, "%s: bad value '%s'\n%s", TOOL, optarg ? optarg : "", usage); return 2; }
    }
    if (optind != argc - 1) { cli_error(TOOL, NULL, "expects one LIST.csv"); return 2; }
    if (lc.sampling.train) lc.sampling.min_short = lc.sampling.crop_size, lc.sampling.max_short = lc.sampling.crop_size * 8 / 7;
    lc.prefetch = prefetch ? prefetch : 2 * lc.batch;
    lc.seed = (uint64_t)seed;
    lc.epoch = epoch;
    lc.shuffle = lc.sampling.train;
    lc.time_limit_s = tl;
    char err[1024];
    Dataset ds;
    if (dataset_load_csv(argv[optind], root, &ds, err, sizeof err)) { cli_error(TOOL, NULL, err); return 1; }
    lc.ds = &ds;
    double t0 = now_ms();
    Loader *l = loader_start(&lc, err, sizeof err);
    if (!l) { cli_error(TOOL, NULL, err); dataset_free(&ds); return 1; }
    Batch b;
    int r, batches = 0;
    long videos = 0;
    uint64_t h = FNV_OFFSET;
    while ((r = loader_next(l, &b)) == 1) {
        batches++;
        videos += b.n;
        if (digest) {
            size_t bytes = (size_t)b.n * b.clips * b.frames * b.crop * b.crop * 3;
            h = fnv1a(h, b.pixels, bytes);
            for (int i = 0; i < b.n; i++) h = fnv1a_u64(h, (uint64_t)b.labels[i] + 0x9E37);
        }
        batch_free(&b);
    }
    double sec = (now_ms() - t0) / 1e3;
    size_t skipped = loader_skipped(l), replaced = loader_replaced(l);
    loader_stop(l);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long clips = videos * clips_per_video(&lc.sampling);
    if (json)
        printf("{\"videos\": %ld, \"clips\": %ld, \"batches\": %d, \"seconds\": %.3f, \"clips_per_s\": %.2f, \"skipped\": %zu, "
               "\"replaced\": %zu, \"workers\": %d, \"peak_rss_mb\": %.1f, \"digest\": \"%016llx\"}\n",
               videos, clips, batches, sec, clips / sec, skipped, replaced, lc.workers, ru.ru_maxrss / 1024.0,
               digest ? (unsigned long long)h : 0ull);
    else {
        printf("%ld videos (%ld clips) in %d batches, %.2f s, %.1f clips/s, %d workers, peak RSS %.0f MB\n", videos, clips,
               batches, sec, clips / sec, lc.workers, ru.ru_maxrss / 1024.0);
        if (skipped || replaced) printf("unreadable videos: %zu skipped, %zu replaced\n", skipped, replaced);
        if (digest) printf("digest %016llx\n", (unsigned long long)h);
    }
    dataset_free(&ds);
    return r < 0 ? 1 : 0;
}
