/* png_sheet.c — see png_sheet.h; undoes CLIP's normalization for display. */
#include <errno.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "png_sheet.h"
#include "../ir/base.h"

static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};

int png_contact_sheet(const char *path, const float *clips, int rows, int cols, int size, char *err, size_t cap)
{
    const int gap = 2, W = cols * size + (cols + 1) * gap, H = rows * size + (rows + 1) * gap;
    uint8_t *img = malloc((size_t)W * H * 3);
    if (!img) { snprintf(err, cap, "%s: out of memory", path); return -1; }
    memset(img, 40, (size_t)W * H * 3);
    size_t plane = (size_t)size * size;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            const float *f = clips + ((size_t)r * cols + c) * 3 * plane;
            int ox = gap + c * (size + gap), oy = gap + r * (size + gap);
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                    for (int ch = 0; ch < 3; ch++) {
                        float v = (f[ch * plane + (size_t)y * size + x] * stdv[ch] + mean[ch]) * 255.0f + 0.5f;
                        img[((size_t)(oy + y) * W + ox + x) * 3 + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                    }
        }
    AtomicFile af;
    if (atomic_open(&af, path, "wb", err, cap)) { free(img); return -1; }
    FILE *fp = af.f;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int rc = -1;
    if (!png || !info) { snprintf(err, cap, "%s: out of memory", path); goto done; }
    if (setjmp(png_jmpbuf(png))) { snprintf(err, cap, "%s: PNG write failed", path); goto done; }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < H; y++) png_write_row(png, img + (size_t)y * W * 3);
    png_write_end(png, NULL);
    rc = 0;
done:
    if (png) png_destroy_write_struct(&png, info ? &info : NULL);
    if (rc == 0) rc = atomic_commit(&af, err, cap);
    else atomic_abort(&af);
    free(img);
    return rc;
}
