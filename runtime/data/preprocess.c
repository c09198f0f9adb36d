/* preprocess.c — resize, crop, flip, normalize; see preprocess.h.  The
 * resize computes only the cropped window of the resized frame. */
#include <math.h>
#include <stdlib.h>
#include "preprocess.h"

static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};

/* PyTorch's source index for align_corners=False: (dst + 0.5) * in/out - 0.5, clamped at 0 */
static void axis_weights(int in, int out, int from, int n, int *i0, int *i1, float *l1)
{
    float scale = (float)in / (float)out;
    for (int k = 0; k < n; k++) {
        float src = scale * ((float)(from + k) + 0.5f) - 0.5f;
        if (src < 0) src = 0;
        int a = (int)src;
        i0[k] = a;
        i1[k] = a + 1 < in ? a + 1 : in - 1;
        l1[k] = src - (float)a;
    }
}

void preprocess_clip_u8(const uint8_t *frames, int T, int w, int h, const ClipPlan *p, int crop, uint8_t *out)
{
    int rw, rh;
    plan_resized_size(w, h, p->short_side, &rw, &rh);
    int *x0 = malloc(sizeof(int) * (size_t)crop * 2), *y0 = malloc(sizeof(int) * (size_t)crop * 2);
    float *lx = malloc(sizeof(float) * (size_t)crop), *ly = malloc(sizeof(float) * (size_t)crop);
    if (!x0 || !y0 || !lx || !ly) { free(x0); free(y0); free(lx); free(ly); return; }
    int *x1 = x0 + crop, *y1 = y0 + crop;
    axis_weights(w, rw, p->crop_x, crop, x0, x1, lx);
    axis_weights(h, rh, p->crop_y, crop, y0, y1, ly);
    for (int t = 0; t < T; t++) {
        const uint8_t *f = frames + (size_t)t * w * h * 3;
        uint8_t *o = out + (size_t)t * crop * crop * 3;
        for (int y = 0; y < crop; y++) {
            const uint8_t *r0 = f + (size_t)y0[y] * w * 3, *r1 = f + (size_t)y1[y] * w * 3;
            float wy1 = ly[y], wy0 = 1.0f - wy1;
            for (int x = 0; x < crop; x++) {
                int ox = p->flip ? crop - 1 - x : x;
                float wx1 = lx[x], wx0 = 1.0f - wx1;
                for (int c = 0; c < 3; c++) {
                    float top = wx0 * r0[x0[x] * 3 + c] + wx1 * r0[x1[x] * 3 + c];
                    float bot = wx0 * r1[x0[x] * 3 + c] + wx1 * r1[x1[x] * 3 + c];
                    o[((size_t)y * crop + ox) * 3 + c] = (uint8_t)lrintf(wy0 * top + wy1 * bot);
                }
            }
        }
    }
    free(x0); free(y0); free(lx); free(ly);
}

void normalize_clip(const uint8_t *in, int T, int crop, float *out)
{
    size_t plane = (size_t)crop * crop;
    for (int t = 0; t < T; t++)
        for (size_t i = 0; i < plane; i++)
            for (int c = 0; c < 3; c++)
                out[((size_t)t * 3 + c) * plane + i] = (in[((size_t)t * plane + i) * 3 + c] / 255.0f - mean[c]) / stdv[c];
}
