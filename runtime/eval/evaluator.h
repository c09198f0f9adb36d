/* evaluator.h — one list against one class set with a video encoder: the
 * step that `eval`, its protocols and `sweep` repeat. */
#ifndef VCLIP_EVALUATOR_H
#define VCLIP_EVALUATOR_H

#include "metrics.h"
#include "video_features.h"
#include "text_features.h"

typedef struct {
    VideoModel vm;
    Encoder text;            /* when --text-model */
    int has_text;
    SamplingConfig sc;
    FeatureCache cache;
    int batch, workers;
    double scale;
    Comm *comm;              /* NULL: this process; else the videos are shared among the ranks, and rank 0 writes the outputs */
} Evaluator;

typedef struct { ClassMetrics m; size_t skipped, decoded; } SplitResult;
typedef struct {
    const char *pred, *scores, *confusion;  /* optional files */
    long **confusion_matrix;                /* optional: receives the C x C matrix (malloc'd; the caller frees it) */
    StringList *class_names;                /* optional: receives the class names (the caller frees them) */
} Outputs;

/* Defaults: the paper's test views, batch 4, 2 decoders, logit scale 100. */
void evaluator_init(Evaluator *ev);
/* Opens ev->text with the bundled tokenizer (sets has_text).  0 or -1. */
int evaluator_open_text(Evaluator *ev, const char *text_model, const CompileOptions *co, char *err, size_t cap);
/* Closes what evaluator_open_text opened. */
void evaluator_close_text(Evaluator *ev);

/* Class features [C, D] from encode-text's .safetensors, or a class list
 * encoded with ev->text (28 templates); names get the class names. */
Tensor *class_features_for(Evaluator *ev, const char *classes, StringList *names, char *err, size_t cap);
/* Scores every video of `list` (paths under root) against the classes;
 * optional outputs.  0 or -1 with a message. */
int eval_split(Evaluator *ev, const char *list, const char *root, const char *classes, const Outputs *o, SplitResult *r,
               char *err, size_t cap);

#endif
