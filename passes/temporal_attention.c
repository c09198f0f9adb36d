/* temporal_attention.c — turns a CLIP image encoder into VCLIP (DESIGN.md §2).
 *
 * The model gets a `video` input [B, T, 3, H, W], reshaped to B*T frames for
 * the unchanged image encoder; every (fused) attention gets frames=T, the
 * temporal window and the boundary mode, so frame t's queries attend to the
 * keys and values of frames t-w..t+w; the per-frame embeddings come out as
 * `frame_embeddings` [B, T, D] (projected, before normalization).  No
 * parameter is added.  With T = 1 or window 0 it is the image model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "passes.h"
#include "rewrite.h"

static void set_int(Node *n, const char *name, int64_t v)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) { n->attrs[i].i = v; return; }
    Attr *a = node_add_attr(n, name, ATTR_INT);
    if (a) a->i = v;
}

int temporal_attention(Graph *g, const TemporalOptions *t, char *err, size_t cap)
{
    if (t->frames < 1 || t->window < 0 || t->window > 64) { snprintf(err, cap, "--frames must be >= 1 and --temporal-window 0..64"); return -1; }
    Value *img = g->n_inputs == 1 ? g->inputs[0] : NULL, *feat = g->n_outputs == 1 ? g->outputs[0] : NULL;
    if (!img || img->shape.rank != 4 || img->dtype != DT_F32 || !feat || feat->shape.rank != 2 ||
        !dim_is_const(img->shape.d[1]) || !dim_is_const(img->shape.d[2]) || !dim_is_const(img->shape.d[3]) ||
        !dim_is_const(feat->shape.d[1])) {
        snprintf(err, cap, "--frames expects an image encoder: one f32 input [batch, C, H, W] with static C, H, W "
                           "and one output [batch, D]");
        return -1;
    }
    int n_att = 0;
    for (int i = 0; i < g->n_nodes; i++) if (g->nodes[i]->op == OP_ATTENTION) n_att++;
    if (!n_att) { snprintf(err, cap, "--frames: no attention was recognized in this model, so it cannot be made temporal"); return -1; }
    if (graph_find_value(g, "video") || graph_find_value(g, "frame_embeddings")) {
        snprintf(err, cap, "--frames: the model already has a value named 'video' or 'frame_embeddings'");
        return -1;
    }
    /* input: video [batch, T, C, H, W] -> frames [batch*T, C, H, W] */
    Value *video = graph_new_value(g, "video");
    if (!video) { snprintf(err, cap, "out of memory"); return -1; }
    int batch = graph_intern_sym(g, "batch");
    video->dtype = DT_F32;
    video->shape = (Shape){5, {{1, batch}, dim_const(t->frames), img->shape.d[1], img->shape.d[2], img->shape.d[3]}};
    const int64_t fshape[4] = {-1, img->shape.d[1].n, img->shape.d[2].n, img->shape.d[3].n};
    Value *in[2] = {video, int_vector_const(g, "video_to_frames", 4, fshape)};
    Node *split = in[1] ? graph_add_node(g, OP_RESHAPE, "video_to_frames", 2, in, 1, &img) : NULL;
    if (!split) { snprintf(err, cap, "out of memory"); return -1; }
    img->is_input = 0;
    g->inputs[0] = video;
    video->is_input = 1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == OP_ATTENTION) {
            set_int(g->nodes[i], "frames", t->frames);
            set_int(g->nodes[i], "window", t->frames > 1 ? t->window : 0);
            set_int(g->nodes[i], "boundary", t->boundary_mask);
        }
    /* output: [batch*T, D] -> frame_embeddings [batch, T, D] */
    const int64_t oshape[3] = {-1, t->frames, feat->shape.d[1].n};
    Value *oin[2] = {feat, int_vector_const(g, "frames_to_video", 3, oshape)};
    Value *out = graph_new_value(g, "frame_embeddings");
    if (!oin[1] || !out || !graph_add_node(g, OP_RESHAPE, "frames_to_video", 2, oin, 1, &out)) { snprintf(err, cap, "out of memory"); return -1; }
    feat->is_output = 0;
    g->outputs[0] = out;
    out->is_output = 1;
    if (graph_topo_sort(g)) { snprintf(err, cap, "temporal attention: cycle"); return -1; }
    char msg[IR_ERR_CAP];
    if (infer_graph(g, msg, sizeof msg)) { snprintf(err, cap, "temporal attention: %s", msg); return -1; }
    return n_att;
}
