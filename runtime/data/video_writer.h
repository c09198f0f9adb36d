/* video_writer.h — writing RGB frames as a lossless video file (rawvideo in
 * NUT), so generated clips (the demo world) can go through the same FFmpeg
 * decoding pipeline as users' videos, bit for bit. */
#ifndef VCLIP_VIDEO_WRITER_H
#define VCLIP_VIDEO_WRITER_H

#include <stddef.h>
#include <stdint.h>

/* frames: T x [h, w, 3] RGB24.  Written to a temporary name and renamed.
 * 0 or -1 with a message naming the file. */
int video_write_rgb(const char *path, const uint8_t *frames, int T, int w, int h, int fps, char *err, size_t cap);

#endif
