/* jpeg.c — see jpeg.h.  libjpeg reports errors through a longjmp from its
 * error manager; nothing of ours is live across it but the output buffer. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>
#include "jpeg.h"

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} JpegError;

static void on_error(j_common_ptr c)
{
    JpegError *e = (JpegError *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jump, 1);
}

int jpeg_encode(const uint8_t *rgb, int w, int h, int quality, unsigned char **out, size_t *len, char *err, size_t cap)
{
    struct jpeg_compress_struct c;
    JpegError e;
    unsigned char *volatile buf = NULL;
    unsigned long size = 0;
    *out = NULL;
    *len = 0;
    c.err = jpeg_std_error(&e.base);
    e.base.error_exit = on_error;
    if (setjmp(e.jump)) {
        jpeg_destroy_compress(&c);
        free(buf);
        snprintf(err, cap, "JPEG: %s", e.msg);
        return -1;
    }
    jpeg_create_compress(&c);
    unsigned char *dest = NULL;
    jpeg_mem_dest(&c, &dest, &size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * (size_t)w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    buf = dest;
    jpeg_destroy_compress(&c);
    *out = buf;
    *len = size;
    return 0;
}
