/* classify.h — zero-shot labels for any video and any class names, with
 * the paper's inference: class features from the 28-template prompt
 * ensemble, the test views (3 by default), frame embeddings against the
 * class features at the logit scale, averaged over frames and views, and a
 * softmax over the classes.  One implementation behind `vclip-run
 * classify`, the C library (include/vclip.h) and the Python package, so the
 * three agree. */
#ifndef VCLIP_CLASSIFY_H
#define VCLIP_CLASSIFY_H

#include "evaluator.h"

/* Class features [C, D] of names (as given; normalized for the prompts as
 * encode-text does) with ev's text encoder.  Refuses an empty list, an
 * empty name and a name given twice, naming it.  NULL with a message. */
Tensor *classify_class_features(Evaluator *ev, const StringList *names, char *err, size_t cap);

/* probs[C]: the video's class probabilities against W [C, D] (unit rows).
 * 0, or -1 with why (a video that cannot be read says what is wrong with
 * it). */
int classify_video(Evaluator *ev, const char *path, const Tensor *W, float *probs, char *err, size_t cap);

/* The k most probable classes, best first (ties: the lower index). */
void classify_top_k(const float *probs, int C, int k, int *order);

#endif
