/* tokenizer_source.c — see tokenizer_source.h. */
#include <stdio.h>
#include <stdlib.h>
#include "tokenizer_source.h"
#include "../../ir/base.h"

#define BUNDLED_BPE "models/tokenizer/bpe_simple_vocab_16e6.txt.gz"

ClipTokenizer *tokenizer_open(const TokenizerSource *src, char *err, size_t cap)
{
    if (src->hf_vocab || src->hf_merges) {
        if (!src->hf_vocab || !src->hf_merges) {
            snprintf(err, cap, "--hf-vocab and --hf-merges go together");
            return NULL;
        }
        return clip_tokenizer_load_hf(src->hf_vocab, src->hf_merges, err, cap);
    }
    if (src->gz) return clip_tokenizer_load_gz(src->gz, err, cap);
    const char *env = getenv("VCLIP_BPE");
    if (env && *env) return clip_tokenizer_load_gz(env, err, cap);
    char *path = data_path(BUNDLED_BPE);
    if (!path) { snprintf(err, cap, "cannot find the bundled vocabulary (%s); pass --vocab or set VCLIP_BPE", BUNDLED_BPE); return NULL; }
    ClipTokenizer *t = clip_tokenizer_load_gz(path, err, cap);
    free(path);
    return t;
}
