/* train_graph.h — the Open-VCLIP training graph, built from an image
 * encoder's ONNX file: VCLIP's temporal attention, the frame-averaged
 * classification loss against frozen class text features, the optional
 * caption contrastive loss, IWR's interpolated second forward, and the
 * backward from autodiff.  One graph, one session run per step. */
#ifndef VCLIP_TRAIN_GRAPH_H
#define VCLIP_TRAIN_GRAPH_H

#include "../../ir/ir.h"
#include "../../passes/passes.h"

typedef struct {
    int64_t batch, frames, window;
    int boundary_mask;
    const Tensor *class_features; /* [classes, D]; rows L2-normalized by the caller */
    float logit_scale;            /* initial log of the logit scale (trained) */
    int iwr;                      /* add the interpolated forward */
    float beta;                   /* its loss weight */
    int exact_gradient;           /* chain rule's (1 - alpha) vs the released code's convention */
    int captions;                 /* add the caption loss (inputs caption_features [batch, D], caption_mask [batch, batch]) */
    float caption_weight;         /* lambda */
    int cpu_bf16;                 /* the CPU's bf16 step: GEMM operands rounded to bf16, sums f32 (passes: mark-bf16-gemms) */
    int recompute;                /* keep only each block's input; the backward pass recomputes the rest (passes: recompute_blocks) */
    int loss_scale;               /* a last input "loss_scale" (f32 scalar) S: the gradients are those of S * loss (fp16's dynamic loss scaling) */
} TrainGraphConfig;

typedef struct {
    Graph *g;
    int n_params;
    Value **params;               /* trainable: the encoder's f32 initializers, then logit_scale */
    Value **grads;
    Tensor **initial;             /* θ_CLIP: views of each parameter's data as loaded (not copies) */
    /* inputs, in graph order: video, labels, then alpha (iwr), caption_features and caption_mask (captions), loss_scale */
    Value *video, *labels, *alpha, *caption_features, *caption_mask, *loss_scale;
    /* outputs: loss (total), loss_ce (classification on θ), logits [batch, classes], then the gradients */
    Value *loss, *loss_ce, *logits;
    RecomputeStats recompute;     /* what --recompute copied (zeros without it) */
} TrainGraph;

/* Builds the graph; parameters get private, writable copies of their data.
 * 0, or -1 with a message naming the file. */
int train_graph_build(const char *onnx_path, const TrainGraphConfig *cfg, TrainGraph *tg, char *err, size_t cap);
void train_graph_free(TrainGraph *tg);

/* The caption loss's mask for a batch of caption features [B, D]: 0, or
 * CAPTION_MASKED (added to the logits: exp underflows to 0 in f32) where two
 * different videos have the same caption, which is then no negative for
 * either (identical captions are common: pseudo-captions of similar videos,
 * or one caption per class). */
#define CAPTION_MASKED (-1e4f)
void caption_mask_fill(const Tensor *captions, Tensor *mask);

#endif
