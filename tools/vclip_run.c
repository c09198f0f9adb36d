/* vclip-run — the training and evaluation driver: dispatches to one file per
 * command (cmd_*.c).  Training, evaluation and the video commands arrive with
 * their issues; until then --help says exactly what exists. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "commands.h"
#include "version.h"

static const char *usage =
    "usage: vclip-run <command> [options]\n"
    "\n"
    "commands:\n"
    "  demo [--out DIR]                 the whole method on a generated world of coloured shapes:\n"
    "                                   pretrain a tiny CLIP, fine-tune VCLIP / Open-VCLIP, evaluate\n"
    "  classify VIDEO... --visual M --text-model T --classes \"a,b,c\"\n"
    "                                   zero-shot labels for your own videos and class names\n"
    "  caption --list L --root DIR --frame-server URL --llm-server URL ... -o F.jsonl\n"
    "                                   pseudo-captions through model servers (frame captions + LLM summary)\n"
    "  tokenize [TEXT ...] [--file F]   CLIP token ids, one line of 77 per text\n"
    "  encode-text --text-model TEXT.onnx --classes FILE -o OUT.safetensors\n"
    "                                   class features from prompt ensembles (or --captions)\n"
    "  frames VIDEO -o OUT.npy [--mode train|test] [--png SHEET.png]\n"
    "                                   the preprocessed clips the model would see\n"
    "  probe LIST.csv --root DIR        report the unreadable videos of a dataset list\n"
    "  load LIST.csv --root DIR         run the data loader over a list: clips/s, unreadable files\n"
    "  eval --visual MODEL --classes F --list LIST.csv --root DIR\n"
    "                                   zero-shot top-1/top-5 with multi-view inference\n"
    "  metrics --scores S.npy --labels L.npy   top-1/top-5 of saved scores\n"
    "  retrieval --visual M --text-model T --captions F.jsonl --root DIR\n"
    "                                   text<->video Recall@1/5/10, median and mean rank\n"
    "  sweep --clip A.onnx --finetuned B.onnx --ratios 0:1:0.1 ...\n"
    "                                   the patch-ratio curve, zero-shot vs close-set\n"
    "  train --visual M --classes F --train-list L --root DIR [--captions F.jsonl]\n"
    "                                   Open-VCLIP fine-tuning: IWR, SWA, patch, caption loss\n"
    "  average A.safetensors B.safetensors ... -o OUT.safetensors\n"
    "                                   uniform average of trained weights (offline SWA)\n"
    "  patch --visual CLIP.onnx --weights W.safetensors --ratio R -o OUT.onnx\n"
    "                                   R * CLIP + (1 - R) * trained, as an ONNX encoder\n"
    "vclip-run COMMAND --help shows a command's options; vclip-run --version.\n";

int main(int argc, char **argv)
{
    /* Past a file-size limit (a full disk behaves alike), let write() fail so
     * the atomic writers clean up and report, instead of dying on SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    /* large buffers in their own mappings while weights are laid out: see vclipc.c */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    if (argc < 2) { fputs(usage, stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) { fputs(usage, stdout); return 0; }
    if (!strcmp(cmd, "--version")) { printf("vclip-run %s\n", VCLIP_VERSION); return 0; }
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "encode-text")) return cmd_encode_text(argc - 1, argv + 1);
    if (!strcmp(cmd, "frames")) return cmd_frames(argc - 1, argv + 1);
    if (!strcmp(cmd, "probe")) return cmd_probe(argc - 1, argv + 1);
    if (!strcmp(cmd, "load")) return cmd_load(argc - 1, argv + 1);
    if (!strcmp(cmd, "metrics")) return cmd_metrics(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "classify")) return cmd_classify(argc - 1, argv + 1);
    if (!strcmp(cmd, "caption")) return cmd_caption(argc - 1, argv + 1);
    if (!strcmp(cmd, "retrieval")) return cmd_retrieval(argc - 1, argv + 1);
    if (!strcmp(cmd, "sweep")) return cmd_sweep(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "average")) return cmd_average(argc - 1, argv + 1);
    if (!strcmp(cmd, "patch")) return cmd_patch(argc - 1, argv + 1);
    if (!strcmp(cmd, "demo")) return cmd_demo(argc - 1, argv + 1);
    fprintf(stderr, "vclip-run: unknown command '%s'\n\n%s", cmd, usage);
    return 2;
}
