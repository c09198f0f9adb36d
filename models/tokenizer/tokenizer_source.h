/* tokenizer_source.h — which CLIP vocabulary a command uses: a .gz of BPE
 * merges, Hugging Face's vocab.json + merges.txt, or (neither) the bundled
 * merges, overridable with $VCLIP_BPE. */
#ifndef VCLIP_TOKENIZER_SOURCE_H
#define VCLIP_TOKENIZER_SOURCE_H

#include <stddef.h>
#include "bpe.h"

typedef struct { const char *gz, *hf_vocab, *hf_merges; } TokenizerSource;
/* NULL with a message naming what is missing or broken. */
ClipTokenizer *tokenizer_open(const TokenizerSource *src, char *err, size_t cap);

#endif
