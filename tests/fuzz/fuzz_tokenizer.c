/* fuzz_tokenizer.c — libFuzzer target: arbitrary bytes through CLIP's text
 * cleanup and BPE (the bundled vocabulary, loaded once).  Checks the row
 * invariants: start token first, the last non-zero id is the end token
 * (a text may spell out special tokens, so end ids can also appear earlier),
 * zero padding after it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "../../models/tokenizer/bpe.h"

static ClipTokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tok) {
        char err[512];
        const char *path = getenv("VCLIP_BPE");
        tok = clip_tokenizer_load_gz(path ? path : VCLIP_DATA_DIR "/models/tokenizer/bpe_simple_vocab_16e6.txt.gz", err, sizeof err);
        if (!tok) { fprintf(stderr, "%s\n", err); abort(); }
    }
    int64_t row[77];
    if (clip_tokenize(tok, (const char *)data, size, 77, row)) return 0;
    int last = 76;
    while (last > 0 && row[last] == 0) last--;
    if (row[0] != clip_tokenizer_sot(tok) || last < 1 || row[last] != clip_tokenizer_eot(tok)) __builtin_trap();
    return 0;
}
