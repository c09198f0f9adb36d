/* vclip-run — the training and evaluation driver.  Its commands (train, eval,
 * encode-text, frames, ...) arrive with the runtime issues; until then it
 * says so plainly instead of pretending. */
#include <stdio.h>
#include <string.h>
#include "version.h"

static const char *usage =
    "usage: vclip-run <command> [options]\n"
    "\n"
    "Training and evaluation of VCLIP models.  No commands are available in this\n"
    "version yet: train, eval, encode-text, tokenize and frames are planned.\n"
    "To run an ONNX model on the CPU today, use: vclipc run MODEL.onnx --input ...\n"
    "\n"
    "  vclip-run --help       this text\n"
    "  vclip-run --version    the version\n";

int main(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) { fputs(usage, stdout); return 0; }
    if (argc >= 2 && !strcmp(argv[1], "--version")) { printf("vclip-run %s\n", VCLIP_VERSION); return 0; }
    if (argc >= 2) fprintf(stderr, "vclip-run: unknown command '%s'\n\n", argv[1]);
    fputs(usage, stderr);
    return 2;
}
