/* cmd_patch.c — `vclip-run patch`: Open-VCLIP's test-time patch offline.
 * The CLIP encoder's weights move toward the trained ones,
 *   θ = r * θ_CLIP + (1 - r) * θ_trained,
 * and the result is written as an ONNX encoder that eval, sweep and vclipc
 * take (r = 0 exports the trained weights as they are). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../onnx/onnx_io.h"
#include "../passes/passes.h"
#include "../runtime/train/checkpoint.h"
#include "cli.h"
#include "commands.h"

#define TOOL "vclip-run patch"

static const char *usage =
    "usage: vclip-run patch --visual CLIP.onnx --weights W.safetensors --ratio R -o OUT.onnx\n"
    "  --visual     the CLIP image encoder that was fine-tuned (θ_CLIP)\n"
    "  --weights    trained weights: weights.safetensors, a checkpoint, or an average of them\n"
    "  --ratio R    0..1 (default 0.5); 1 is CLIP, 0 the trained model\n";

int cmd_patch(int argc, char **argv)
{
    static const struct option opts[] = {{"visual", 1, 0, 'v'}, {"weights", 1, 0, 'w'}, {"ratio", 1, 0, 'r'},
                                         {"output", 1, 0, 'o'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *visual = NULL, *weights = NULL, *out = NULL;
    double ratio = 0.5;
    char *end;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'v': visual = optarg; break;
        case 'w': weights = optarg; break;
        case 'o': out = optarg; break;
        case 'r':
            ratio = strtod(optarg, &end);
            if (*end || ratio < 0 || ratio > 1) return cli_usage_error(TOOL, "--ratio needs a number in 0..1");
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: return cli_usage_error(TOOL, "unknown option (see --help)");
        }
    }
    if (!visual || !weights || !out || optind < argc) return cli_usage_error(TOOL, "--visual, --weights and -o are required (see --help)");
    char err[1024];
    int rc = 1, applied, unused;
    Graph *clip = onnx_load(visual, err, sizeof err), *trained = clip ? onnx_load(visual, err, sizeof err) : NULL;
    if (!trained) { cli_error(TOOL, NULL, err); goto done; }
    if (checkpoint_apply(trained, weights, &applied, &unused, err, sizeof err)) { cli_error(TOOL, NULL, err); goto done; }
    if (!applied) { fprintf(stderr, "%s: %s: none of its weights is a weight of %s\n", TOOL, weights, visual); goto done; }
    if (patch_weights(clip, trained, (float)ratio, err, sizeof err) < 0) { cli_error(TOOL, visual, err); goto done; }
    OnnxSaveOptions so = {.external_data = -1, .producer = "vclip-run patch"};
    if (onnx_save(clip, out, &so, err, sizeof err)) { cli_error(TOOL, out, err); goto done; }
    printf("%s: r = %g, %d weights from %s%s\n", out, ratio, applied, weights, unused ? " (others in the file are not in the encoder)" : "");
    rc = 0;
done:
    graph_free(clip);
    graph_free(trained);
    return rc;
}
