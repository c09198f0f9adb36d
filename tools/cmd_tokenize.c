/* cmd_tokenize.c — `vclip-run tokenize`: one line of context-length ids per
 * input text (zero padded), for debugging and for checks against other
 * tokenizers.  This output format is an interface: keep it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "commands.h"

static const char *usage =
    "usage: vclip-run tokenize [TEXT ...] [--file F] [options]\n"
    "  Prints one line per text: CONTEXT space-separated token ids, zero padded\n"
    "  (start token, the text's tokens, end token; a text too long is cut and\n"
    "  keeps the end token last).\n"
    "  --file F            one text per line ('\\n'; a trailing '\\r' is dropped)\n"
    "  --context N         ids per line (default 77)\n"
    "  --vocab GZ          open_clip's bpe_simple_vocab_16e6.txt.gz (default: the bundled copy)\n"
    "  --hf-vocab JSON --hf-merges TXT   a Hugging Face vocab.json + merges.txt instead\n";

static int emit(ClipTokenizer *t, const char *text, size_t len, int context, int64_t *row)
{
    if (clip_tokenize(t, text, len, context, row)) return -1;
    for (int i = 0; i < context; i++) printf(i ? " %lld" : "%lld", (long long)row[i]);
    putchar('\n');
    return 0;
}

int cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {{"file", 1, 0, 'f'}, {"context", 1, 0, 'c'}, {"vocab", 1, 0, 'v'},
                                         {"hf-vocab", 1, 0, 'j'}, {"hf-merges", 1, 0, 'm'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *file = NULL;
    TokenizerSource src = {0};
    int context = 77, c;
    while ((c = getopt_long(argc, argv, "f:c:v:j:m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': file = optarg; break;
        case 'c':
            if (cli_parse_int(optarg, 2, 1 << 20, &context)) { cli_error("vclip-run tokenize", NULL, "--context needs an integer >= 2"); return 2; }
            break;
        case 'v': src.gz = optarg; break;
        case 'j': src.hf_vocab = optarg; break;
        case 'm': src.hf_merges = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!file && optind >= argc) { cli_error("vclip-run tokenize", NULL, "give TEXT arguments or --file F"); return 2; }
    char err[1024];
    ClipTokenizer *t = tokenizer_open(&src, err, sizeof err);
    if (!t) {
        cli_error("vclip-run tokenize", NULL, err);
        return (!src.hf_vocab) != (!src.hf_merges) ? 2 : 1; /* a lone --hf-* flag is a usage error */
    }
    int64_t *row = malloc(sizeof(int64_t) * (size_t)context);
    int rc = row ? 0 : 1;
    for (int i = optind; !rc && i < argc; i++) rc = emit(t, argv[i], strlen(argv[i]), context, row) ? 1 : 0;
    if (!rc && file) {
        size_t len;
        char *buf = read_file(file, &len, err, sizeof err);
        if (!buf) { cli_error("vclip-run tokenize", NULL, err); rc = 1; }
        for (size_t pos = 0; buf && !rc && pos < len;) {
            char *nl = memchr(buf + pos, '\n', len - pos);
            size_t end = nl ? (size_t)(nl - buf) : len, l = end - pos;
            if (l && buf[pos + l - 1] == '\r') l--;
            rc = emit(t, buf + pos, l, context, row) ? 1 : 0;
            pos = end + 1;
        }
        free(buf);
    }
    if (rc) cli_error("vclip-run tokenize", NULL, "out of memory");
    free(row);
    clip_tokenizer_free(t);
    return rc;
}
