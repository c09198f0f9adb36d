/* clip_builder.h — CLIP image and text towers built directly as IR graphs
 * (OpenAI layout, our fused ops), with seeded random weights.  The demo
 * world pretrains one from scratch; the towers export to ONNX and come back
 * through the same importer as any user's model. */
#ifndef VCLIP_CLIP_BUILDER_H
#define VCLIP_CLIP_BUILDER_H

#include "../ir/builder.h"

typedef struct {
    int image, patch, width, layers, heads;         /* image tower */
    int context, vocab, text_width, text_layers, text_heads;
    int embed;                                      /* shared embedding width */
} ClipConfig;

/* image [batch, 3, image, image] -> image_features [batch, embed] (not
 * normalized); weights named visual.* */
Value *clip_add_visual(Builder *b, const ClipConfig *c, Value *image, uint64_t *rng);
/* text [batch, context] int64 token ids (EOT = the largest id in each row,
 * as OpenAI's pooling assumes) -> text_features [batch, embed]; weights text.* */
Value *clip_add_text(Builder *b, const ClipConfig *c, Value *text, uint64_t *rng);

/* A stand-alone tower with a symbolic batch: input "image" or "text", output
 * "image_features" or "text_features".  NULL with a message. */
Graph *clip_visual_graph(const ClipConfig *c, uint64_t seed, char *err, size_t cap);
Graph *clip_text_graph(const ClipConfig *c, uint64_t seed, char *err, size_t cap);

#endif
