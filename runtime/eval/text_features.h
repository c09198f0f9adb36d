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

typedef struct {
    Model *m;
    ClipTokenizer *tok;
    int context, dim, batch;
    DType in_dtype;
} Encoder;

/* The model compiled with co (target, precision, threads); e->tok and
 * e->batch are the caller's.  0, or -1 with a message naming the file. */
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
