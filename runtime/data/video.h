/* video.h — decoding the frames a clip needs (FFmpeg). */
#ifndef VCLIP_VIDEO_H
#define VCLIP_VIDEO_H

#include <stdint.h>
#include <stddef.h>

typedef struct {
    int width, height;     /* of the decoded frames, before rotation */
    int64_t frames;        /* frame count */
    double fps, duration_s;
    int rotation;          /* degrees clockwise to display upright: 0, 90, 180, 270 */
    char codec[32];
} VideoInfo;

/* Opens the video and fills info (counting frames by decoding when the
 * container does not say).  0, or -1 with a message naming the file. */
int video_probe(const char *path, double time_limit_s, VideoInfo *info, char *err, size_t cap);

/* Upright frame size. */
static inline int video_out_width(const VideoInfo *v) { return v->rotation % 180 ? v->height : v->width; }
static inline int video_out_height(const VideoInfo *v) { return v->rotation % 180 ? v->width : v->height; }

/* Decodes frames `indices` (presentation order, sorted ascending, repeats
 * allowed) into out: n upright RGB24 frames [n][H][W][3].  H.264 and HEVC
 * pictures that nothing refers to are skipped unless asked for;
 * VIDEO_DECODE_EVERY_FRAME decodes them all (the same frames, slower: the
 * tests' oracle).  stats (or NULL) gets what the decoder did. */
enum { VIDEO_DECODE_EVERY_FRAME = 1 };
typedef struct {
    int64_t frames_decoded; /* pictures the decoder produced, in the last pass */
    int decoded_again;      /* 1: a pass by pts did not map (or lost a frame), so it decoded again from the start */
} VideoDecodeStats;
int video_decode_frames(const char *path, const VideoInfo *info, const int64_t *indices, int n, double time_limit_s, int flags,
                        uint8_t *out, VideoDecodeStats *stats, char *err, size_t cap);

#endif
