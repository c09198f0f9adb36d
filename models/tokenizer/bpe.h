/* bpe.h — CLIP's byte-level BPE tokenizer; see bpe.c. */
#ifndef VCLIP_BPE_H
#define VCLIP_BPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ClipTokenizer ClipTokenizer;

/* open_clip's bpe_simple_vocab_16e6.txt.gz; NULL with a message naming the file. */
ClipTokenizer *clip_tokenizer_load_gz(const char *path, char *err, size_t cap);
/* Hugging Face vocab.json + merges.txt. */
ClipTokenizer *clip_tokenizer_load_hf(const char *vocab_json, const char *merges_txt, char *err, size_t cap);
void clip_tokenizer_free(ClipTokenizer *t);

int32_t clip_tokenizer_sot(const ClipTokenizer *t);
int32_t clip_tokenizer_eot(const ClipTokenizer *t);

/* Cleans and encodes text (no start/end tokens); *ids is malloc'd. 0 or -1 (OOM). */
int clip_tokenizer_encode(ClipTokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids);
/* One row of `context` ids: start, tokens, end, zeros; when too long, the
 * tokens are cut and the end token kept last. 0 or -1. */
int clip_tokenize(ClipTokenizer *t, const char *text, size_t len, int context, int64_t *row);

#endif
