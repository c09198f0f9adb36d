/* jpeg.h — an RGB frame as JPEG bytes in memory (libjpeg-turbo), for the
 * image parts sent to captioning servers. */
#ifndef VCLIP_JPEG_H
#define VCLIP_JPEG_H

#include <stddef.h>
#include <stdint.h>

/* rgb[h][w][3] -> *out (malloc'd, *len bytes) at quality 1..100.  0, or -1
 * with a message. */
int jpeg_encode(const uint8_t *rgb, int w, int h, int quality, unsigned char **out, size_t *len, char *err, size_t cap);

#endif
