/* cmd_frames.c — `vclip-run frames`: the exact preprocessed tensor the model
 * would see for one video, [views, T, 3, H, W], plus optionally a contact
 * sheet and (--json) the sampling plan.  This interface is relied on: keep it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../runtime/data/clip_reader.h"
#include "../runtime/data/preprocess.h"
#include "../runtime/data/video.h"
#include "../runtime/npy.h"
#include "cli.h"
#include "commands.h"
#include "png_sheet.h"

#define TOOL "vclip-run frames"

static const char *usage =
    "usage: vclip-run frames VIDEO -o OUT.npy [options]\n"
    "  Writes the preprocessed clips [views, T, 3, H, W] (f32, CLIP-normalized).\n"
    "  --frames T          frames per clip (default 8)\n"
    "  --stride S          sampling stride (default 16, at --target-fps)\n"
    "  --target-fps F      the stride's frame rate (default 30; 0: stride in source frames)\n"
    "  --mode train|test   train: one random clip, random short side in [224, 256], random\n"
    "                      crop, flip p=0.5; test (default): --views clips x --crops crops\n"
    "  --views N           test: temporal views (default 3)\n"
    "  --crops 1|3         test: spatial crops (default 1, the centre)\n"
    "  --crop-size N       output H = W (default 224)\n"
    "  --seed N            train mode's randomness (default 0)\n"
    "  --time-limit S      give up on a file after S seconds (default 60)\n"
    "  --png SHEET.png     also write a contact sheet: one row per view\n"
    "  --json              print the plan (video info, frame indices, scale, crop, flip)\n";

int cmd_frames(int argc, char **argv)
{
    static const struct option opts[] = {
        {"frames", 1, 0, 'T'}, {"stride", 1, 0, 'S'}, {"target-fps", 1, 0, 'F'}, {"mode", 1, 0, 'm'},
        {"views", 1, 0, 'v'}, {"crops", 1, 0, 'c'}, {"crop-size", 1, 0, 'z'}, {"seed", 1, 0, 's'},
        {"time-limit", 1, 0, 'l'}, {"output", 1, 0, 'o'}, {"png", 1, 0, 'p'}, {"json", 0, 0, 'j'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    SamplingConfig sc;
    sampling_defaults(&sc);
    const char *out = NULL, *png = NULL;
    int seed = 0, json = 0, tl = 60, c, fps_i;
    while ((c = getopt_long(argc, argv, "T:S:F:m:v:c:z:s:l:o:p:jh", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'T': bad = cli_parse_int(optarg, 1, CLIP_MAX_FRAMES, &sc.frames); break;
        case 'S': bad = cli_parse_int(optarg, 1, 1 << 16, &sc.stride); break;
        case 'F': bad = cli_parse_int(optarg, 0, 1000, &fps_i); sc.target_fps = fps_i; break;
        case 'm':
            if (!strcmp(optarg, "train")) sc.train = 1;
            else if (!strcmp(optarg, "test")) sc.train = 0;
            else bad = 1;
            break;
        case 'v': bad = cli_parse_int(optarg, 1, 64, &sc.views); break;
        case 'c': bad = cli_parse_int(optarg, 1, 3, &sc.crops) || sc.crops == 2; break;
        case 'z': bad = cli_parse_int(optarg, 8, 4096, &sc.crop_size); break;
        case 's': bad = cli_parse_int(optarg, 0, 2147483647, &seed); break;
        case 'l': bad = cli_parse_int(optarg, 1, 86400, &tl); break;
        case 'o': out = optarg; break;
        case 'p': png = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
        if (bad) { fprintf(stderr, "%s: bad value '%s'\n%s", TOOL, optarg ? optarg : "", usage); return 2; }
    }
    if (optind != argc - 1 || !out) { cli_error(TOOL, NULL, optind != argc - 1 ? "expects one VIDEO" : "missing -o OUT.npy"); return 2; }
    if (sc.train) sc.min_short = sc.crop_size, sc.max_short = sc.crop_size * 8 / 7; /* [224, 256] for 224 */
    const char *path = argv[optind];
    char err[1024];
    VideoInfo vi;
    ClipPlan plans[64 * 3];
    int np = clips_per_video(&sc), T = sc.frames, rc = 1;
    uint8_t *u8 = malloc(clip_bytes(&sc));
    int64_t dims[5] = {np, T, 3, sc.crop_size, sc.crop_size};
    Tensor *x = tensor_new(DT_F32, 5, dims);
    if (!u8 || !x) { cli_error(TOOL, NULL, "out of memory"); goto done; }
    if (read_clips(path, &sc, (uint64_t)seed, 0, tl, u8, plans, &vi, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    size_t per_clip = (size_t)T * sc.crop_size * sc.crop_size * 3;
    for (int i = 0; i < np; i++)
        normalize_clip(u8 + (size_t)i * per_clip, T, sc.crop_size, (float *)x->data + (size_t)i * per_clip);
    if (npy_save(out, x, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    if (png && png_contact_sheet(png, x->data, np, T, sc.crop_size, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    if (json) {
        printf("{\"video\": {\"width\": %d, \"height\": %d, \"frames\": %lld, \"fps\": %.6f, \"rotation\": %d, \"codec\": \"%s\"}, "
               "\"clips\": [", vi.width, vi.height, (long long)vi.frames, vi.fps, vi.rotation, vi.codec);
        for (int i = 0; i < np; i++) {
            printf("%s{\"start\": %.6f, \"indices\": [", i ? ", " : "", plans[i].start);
            for (int t = 0; t < T; t++) printf("%s%lld", t ? ", " : "", (long long)plans[i].index[t]);
            printf("], \"short_side\": %d, \"crop_x\": %d, \"crop_y\": %d, \"flip\": %d}", plans[i].short_side,
                   plans[i].crop_x, plans[i].crop_y, plans[i].flip);
        }
        printf("]}\n");
    }
    rc = 0;
done:
    free(u8);
    tensor_free(x);
    return rc;
}
