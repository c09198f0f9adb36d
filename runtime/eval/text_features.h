/* text_features.h — running a text encoder over texts: unit-norm features,
 * and prompt-ensemble class features (encode-text, eval, retrieval, the
 * demo); the text twin of video_features.h. */
#ifndef VCLIP_TEXT_FEATURES_H
#define VCLIP_TEXT_FEATURES_H

#include "../../ir/ir.h"
#include "../../models/prompts.h"
#include "../../models/tokenizer/bpe.h"
#include "../model.h"
#include "video_features.h"

/* Texts are encoded in batches of similar token counts (sorted by length),
 * each batch on the first L positions of the context, L its longest text
 * (the tokens up to its end-of-text token): with causal attention and
 * pooling at that token, later positions cannot change a feature.  A model
 * for each L is compiled when a batch first needs it, sharing the weights of
 * the whole-context model, and its first batch is also run at the whole
 * context and compared bit for bit; a difference (an encoder that is not
 * causal, or pools elsewhere) or a graph the cut cannot follow turns the cut
 * off for good, with a note on stderr. */
typedef struct {
    Model *m;                /* the whole context */
    ClipTokenizer *tok;
    int context, dim, batch;
    DType in_dtype;
    int full_context;        /* the caller's: every batch at the whole context, in the given order */
    char *path;
    CompileOptions co;
    Model **cut;             /* [context]: the model on the first L positions, once needed */
    int cut_off;             /* a cut model failed to compile or disagreed */
    int64_t positions, positions_full; /* token positions computed, and at the whole context */
} Encoder;

/* The model compiled with co (target, precision, threads); e->tok, e->batch
 * and e->full_context are the caller's.  0, or -1 with a message naming the
 * file. */
int encoder_open(Encoder *e, const char *model, const CompileOptions *co, char *err, size_t cap);
void encoder_close(Encoder *e);
/* Unit-norm features of n texts into out[n * dim]. */
int encode_texts(Encoder *e, char *const *texts, size_t n, float *out, char *err, size_t cap);
/* Class features [names->n * dim]: every template filled with each name, each
 * prompt's feature normalized, averaged over the templates, renormalized. */
int class_features(Encoder *e, const StringList *names, const StringList *templates, float *out, char *err, size_t cap);

/* Captions JSONL: {"video": ID, "caption": TEXT} or {"video": ID, "captions": [TEXT, ...]}
 * per line -> one entry per caption in texts, its video id in videos. */
int load_captions(const char *path, StringList *texts, StringList *videos, char *err, size_t cap);

#endif
