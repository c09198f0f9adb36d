/* text_features.h — running a text encoder over texts: unit-norm features,
 * and prompt-ensemble class features (shared by encode-text and eval). */
#ifndef VCLIP_TEXT_FEATURES_H
#define VCLIP_TEXT_FEATURES_H

#include "../ir/ir.h"
#include "../models/prompts.h"
#include "../runtime/eval/video_features.h"
#include "../runtime/cpu/session.h"
#include "commands.h"

typedef struct {
    Graph *g;
    Session *s;
    ClipTokenizer *tok;
    int context, dim, batch;
    DType in_dtype;
} Encoder;

int encoder_open(Encoder *e, const char *model, int threads, char *err, size_t cap);
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
