/* video.c — decoding chosen frames of a video with FFmpeg's libraries.
 *
 * Frames are numbered in presentation order from 0, as PyAV and decord
 * number them.  The frame count comes from the container when it states one
 * (nb_frames) and from a full decode otherwise; decoding stops after the last
 * frame asked for.  A frame index past the real end (containers can
 * over-state nb_frames) gets the last decoded frame, as the released
 * sampler's clamp would.  H.264 and HEVC pictures that no other picture
 * refers to are not decoded unless asked for (the decoder's skip_frame, set
 * per packet from its pts): a third to a half of a typical stream's frames,
 * and the frames asked for are bit for bit those of a full decode, because
 * nothing else reads the skipped ones.  Frames are converted to RGB24 at native size by
 * swscale (bilinear, as PyAV's to_ndarray) and turned upright by the
 * stream's display matrix (rotation metadata).  Every call has a wall-clock
 * limit, enforced through FFmpeg's interrupt callback, so a pathological file
 * cannot hang a worker.
 */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#include <libavutil/log.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "video.h"
#include "../../ir/base.h"

typedef struct {
    AVFormatContext *fmt;
    AVCodecContext *dec;
    int stream;
    double deadline;
    int timed_out;
} Decoder;

static int interrupt_cb(void *opaque)
{
    Decoder *d = opaque;
    if ((now_ms() / 1e3) > d->deadline) { d->timed_out = 1; return 1; }
    return 0;
}

static void av_message(int code, char *buf, size_t cap)
{
    char e[AV_ERROR_MAX_STRING_SIZE] = "";
    av_strerror(code, e, sizeof e);
    snprintf(buf, cap, "%s", e);
}

static void decoder_close(Decoder *d)
{
    avcodec_free_context(&d->dec);
    avformat_close_input(&d->fmt);
}

/* FFmpeg's own log is noise next to our messages, which name the file and
 * the reason; VCLIP_DEBUG >= 2 brings it back. */
static void quiet_ffmpeg(void)
{
    const char *e = getenv("VCLIP_DEBUG");
    av_log_set_level(e && atoi(e) >= 2 ? AV_LOG_INFO : AV_LOG_QUIET);
}

static int decoder_open(Decoder *d, const char *path, double time_limit_s, VideoInfo *info, char *err, size_t cap)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, quiet_ffmpeg);
    memset(d, 0, sizeof *d);
    char msg[256];
    d->deadline = (now_ms() / 1e3) + (time_limit_s > 0 ? time_limit_s : 1e9);
    d->fmt = avformat_alloc_context();
    if (!d->fmt) { snprintf(err, cap, "%s: out of memory", path); return -1; }
    d->fmt->interrupt_callback = (AVIOInterruptCB){interrupt_cb, d};
    int rc = avformat_open_input(&d->fmt, path, NULL, NULL);
    if (rc < 0) {
        av_message(rc, msg, sizeof msg);
        snprintf(err, cap, "%s: cannot open: %s", path, d->timed_out ? "time limit exceeded" : msg);
        return -1;
    }
    if ((rc = avformat_find_stream_info(d->fmt, NULL)) < 0) {
        av_message(rc, msg, sizeof msg);
        snprintf(err, cap, "%s: cannot read stream info: %s", path, d->timed_out ? "time limit exceeded" : msg);
        decoder_close(d);
        return -1;
    }
    const AVCodec *codec = NULL;
    d->stream = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (d->stream < 0 || !codec) {
        snprintf(err, cap, "%s: %s", path, d->stream == AVERROR_DECODER_NOT_FOUND ? "no decoder for its video stream" : "no video stream");
        decoder_close(d);
        return -1;
    }
    AVStream *st = d->fmt->streams[d->stream];
    d->dec = avcodec_alloc_context3(codec);
    if (!d->dec || avcodec_parameters_to_context(d->dec, st->codecpar) < 0) { snprintf(err, cap, "%s: out of memory", path); decoder_close(d); return -1; }
    d->dec->thread_count = 1; /* one worker, one thread: parallelism is across videos */
    if ((rc = avcodec_open2(d->dec, codec, NULL)) < 0) {
        av_message(rc, msg, sizeof msg);
        snprintf(err, cap, "%s: cannot open the %s decoder: %s", path, codec->name, msg);
        decoder_close(d);
        return -1;
    }
    if (d->dec->width <= 0 || d->dec->height <= 0 || d->dec->width > 16384 || d->dec->height > 16384) {
        snprintf(err, cap, "%s: unsupported frame size %dx%d", path, d->dec->width, d->dec->height);
        decoder_close(d);
        return -1;
    }
    memset(info, 0, sizeof *info);
    info->width = d->dec->width;
    info->height = d->dec->height;
    info->frames = st->nb_frames > 0 ? st->nb_frames : -1;
    AVRational r = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
    info->fps = r.num && r.den ? av_q2d(r) : 0;
    info->duration_s = st->duration > 0 ? st->duration * av_q2d(st->time_base)
                                        : (d->fmt->duration > 0 ? d->fmt->duration / (double)AV_TIME_BASE : 0);
    snprintf(info->codec, sizeof info->codec, "%s", codec->name);
    const int32_t *m = (const int32_t *)av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, NULL);
    if (m) { /* degrees clockwise to display upright, as ffmpeg's autorotate computes it */
        double theta = -round(av_display_rotation_get(m));
        theta -= 360 * floor(theta / 360 + 0.9 / 360);
        info->rotation = (int)theta;
        if (info->rotation != 90 && info->rotation != 180 && info->rotation != 270) info->rotation = 0;
    }
    return 0;
}

/* Decodes frames in order, calling keep(index) for each; stops after index
 * stop_after (-1: decode all).  Indices count frames from the start, or
 * come from each frame's pts looked up in `pts` (sorted, n_pts); a pts not
 * in the table returns -2 so the caller can decode from the start.  With
 * `wanted` (sorted pts, n_wanted), a packet whose pts is not wanted has its
 * non-reference pictures skipped.  Returns the number of frames seen. */
typedef int (*KeepFn)(void *ctx, int64_t index, const AVFrame *f);

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t decode_frames(Decoder *d, int64_t stop_after, KeepFn keep, void *ctx, const char *path, char *err, size_t cap,
                             const int64_t *pts, int64_t n_pts, const int64_t *wanted, int n_wanted)
{
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    int64_t seen = 0;
    int draining = 0, rc;
    char msg[256];
    if (!pkt || !frame) { snprintf(err, cap, "%s: out of memory", path); seen = -1; goto done; }
    for (;;) {
        if (!draining) {
            rc = av_read_frame(d->fmt, pkt);
            if (rc == AVERROR_EOF) { draining = 1; avcodec_send_packet(d->dec, NULL); }
            else if (rc < 0) {
                if (d->timed_out) { snprintf(err, cap, "%s: time limit exceeded", path); seen = -1; goto done; }
                draining = 1; /* a read error part-way: keep what decoded */
                avcodec_send_packet(d->dec, NULL);
            } else {
                if (pkt->stream_index == d->stream) {
                    if (wanted)
                        d->dec->skip_frame = bsearch(&pkt->pts, wanted, (size_t)n_wanted, sizeof *wanted, cmp_i64) ? AVDISCARD_DEFAULT
                                                                                                                  : AVDISCARD_NONREF;
                    avcodec_send_packet(d->dec, pkt); /* decode errors: skip the packet */
                }
                av_packet_unref(pkt);
            }
        }
        for (;;) {
            rc = avcodec_receive_frame(d->dec, frame);
            if (rc == AVERROR(EAGAIN)) break;
            if (rc == AVERROR_EOF) goto done;
            if (rc < 0) {
                av_message(rc, msg, sizeof msg);
                snprintf(err, cap, "%s: decoding failed: %s", path, msg);
                if (!seen) seen = -1;
                goto done;
            }
            int64_t index = seen;
            if (pts) {
                int64_t t = frame->best_effort_timestamp;
                const int64_t *at = t == AV_NOPTS_VALUE ? NULL : bsearch(&t, pts, (size_t)n_pts, sizeof *pts, cmp_i64);
                if (!at) { av_frame_unref(frame); seen = -2; goto done; }
                index = at - pts;
            }
            int k = keep(ctx, index, frame);
            av_frame_unref(frame);
            if (k < 0) { snprintf(err, cap, "%s: out of memory", path); seen = -1; goto done; }
            seen++;
            if (stop_after >= 0 && index >= stop_after) goto done;
        }
        if (d->timed_out) { snprintf(err, cap, "%s: time limit exceeded", path); seen = -1; goto done; }
    }
done:
    av_packet_free(&pkt);
    av_frame_free(&frame);
    return seen;
}

typedef struct {
    const int64_t *want;   /* sorted frame indices wanted (may repeat) */
    int n_want;
    uint8_t **slots;       /* decoded RGB for each distinct index, by position in want */
    int w, h;
    int stride;            /* bytes per row: see rgb_stride() */
    struct SwsContext *sws;
    uint8_t *last;         /* the latest frame kept (for indices past the end) */
} KeepCtx;

/* Room for the width rounded up to 16 pixels, 64-byte aligned.  swscale's
 * SIMD YUV-to-RGB converters run whole blocks of 8 pixels, and where the
 * rounded-up row does not fit the stride they stop a block short and leave
 * the last width % 8 pixels unwritten (a 340-wide frame in a 1024-byte
 * stride lost its right 4 columns to whatever the memory held). */
static int rgb_stride(int width) { return (((width + 15) & ~15) * 3 + 63) & ~63; }

static int to_rgb(KeepCtx *c, const AVFrame *f, uint8_t *dst)
{
    c->sws = sws_getCachedContext(c->sws, f->width, f->height, f->format, c->w, c->h, AV_PIX_FMT_RGB24, SWS_BILINEAR,
                                  NULL, NULL, NULL);
    if (!c->sws) return -1;
    uint8_t *planes[4] = {dst};
    int strides[4] = {c->stride};
    sws_scale(c->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, planes, strides);
    return 0;
}

static int keep_wanted(void *vctx, int64_t index, const AVFrame *f)
{
    KeepCtx *c = vctx;
    if (f->width != c->w || f->height != c->h) return 0; /* a mid-stream size change: not a frame we can use */
    for (int i = 0; i < c->n_want; i++) {
        if (c->want[i] != index) continue;
        if (!c->slots[i]) {
            c->slots[i] = malloc((size_t)c->stride * c->h + 64); /* + slack for the last row's SIMD tail */
            if (!c->slots[i] || to_rgb(c, f, c->slots[i])) return -1;
        }
        c->last = c->slots[i];
    }
    return 0;
}

static int count_only(void *ctx, int64_t index, const AVFrame *f) { (void)ctx; (void)index; (void)f; return 0; }

int video_probe(const char *path, double time_limit_s, VideoInfo *info, char *err, size_t cap)
{
    Decoder d;
    if (decoder_open(&d, path, time_limit_s, info, err, cap)) return -1;
    int rc = 0;
    if (info->frames < 0) { /* no frame count in the container: count by decoding */
        int64_t n = decode_frames(&d, -1, count_only, NULL, path, err, cap, NULL, 0, NULL, 0);
        if (n <= 0) { if (n == 0) snprintf(err, cap, "%s: no decodable frames", path); rc = -1; }
        else info->frames = n;
    }
    decoder_close(&d);
    return rc;
}

/* Copies an RGB frame (rows `stride` bytes apart) into packed dst, rotated
 * clockwise by deg (w x h -> h x w for 90/270). */
static void place_rgb(const uint8_t *src, int stride, int w, int h, int deg, uint8_t *dst)
{
    if (!deg) {
        for (int y = 0; y < h; y++) memcpy(dst + (size_t)y * w * 3, src + (size_t)y * stride, (size_t)w * 3);
        return;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int nx, ny, nw;
            if (deg == 90) { nx = h - 1 - y; ny = x; nw = h; }
            else if (deg == 270) { nx = y; ny = w - 1 - x; nw = h; }
            else { nx = w - 1 - x; ny = h - 1 - y; nw = w; }
            memcpy(dst + ((size_t)ny * nw + nx) * 3, src + (size_t)y * stride + (size_t)x * 3, 3);
        }
}

#define SEEK_MIN_FRAME 24 /* closer to the start, decoding from it is as cheap as seeking */

/* The presentation timestamps of all video packets, sorted: frame k of the
 * video is the one with the k-th smallest pts.  Demuxing only (no decoding).
 * NULL when some packet has no pts (then indices cannot come from pts). */
static int64_t *pts_table(Decoder *d, int64_t *n)
{
    AVPacket *pkt = av_packet_alloc();
    int64_t *t = NULL, cap = 0;
    *n = 0;
    while (pkt && av_read_frame(d->fmt, pkt) >= 0) {
        if (pkt->stream_index == d->stream && !(pkt->flags & AV_PKT_FLAG_DISCARD)) { /* discarded: before an edit list's start */
            if (pkt->pts == AV_NOPTS_VALUE) { free(t); t = NULL; *n = 0; av_packet_unref(pkt); break; }
            if (*n == cap) {
                cap = cap ? cap * 2 : 1024;
                int64_t *nt = realloc(t, sizeof(int64_t) * (size_t)cap);
                if (!nt) { free(t); t = NULL; *n = 0; av_packet_unref(pkt); break; }
                t = nt;
            }
            t[(*n)++] = pkt->pts;
        }
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    if (t) qsort(t, (size_t)*n, sizeof *t, cmp_i64);
    for (int64_t i = 1; t && i < *n; i++)
        if (t[i] == t[i - 1]) { free(t); t = NULL; *n = 0; } /* duplicate pts: no unique mapping */
    return t;
}

/* Whether the decoder can drop a picture nothing refers to without decoding
 * it, one packet at a time (skip_frame = AVDISCARD_NONREF). */
static int skips_unreferenced(const AVCodecContext *dec) { return dec->codec_id == AV_CODEC_ID_H264 || dec->codec_id == AV_CODEC_ID_HEVC; }

int video_decode_frames(const char *path, const VideoInfo *info, const int64_t *indices, int n, double time_limit_s, int flags,
                        uint8_t *out, VideoDecodeStats *stats, char *err, size_t cap)
{
    Decoder d;
    VideoInfo vi;
    if (decoder_open(&d, path, time_limit_s, &vi, err, cap)) return -1;
    int64_t maxi = 0;
    for (int i = 0; i < n; i++) maxi = indices[i] > maxi ? indices[i] : maxi;
    if (stats) *stats = (VideoDecodeStats){0};
    KeepCtx c = {.want = indices, .n_want = n, .w = vi.width, .h = vi.height, .stride = rgb_stride(vi.width)};
    c.slots = calloc((size_t)(n ? n : 1), sizeof(uint8_t *));
    int rc = -1;
    if (!c.slots) { snprintf(err, cap, "%s: out of memory", path); goto done; }
    int64_t seen = -2, *pts = NULL, n_pts = 0, *wanted = NULL;
    int seek = n && indices[0] >= SEEK_MIN_FRAME; /* seek near the first wanted frame */
    int skip = n && maxi >= SEEK_MIN_FRAME && !(flags & VIDEO_DECODE_EVERY_FRAME) && skips_unreferenced(d.dec);
    if (seek || skip) { /* frames by pts: from a seek, or with pictures skipped */
        pts = pts_table(&d, &n_pts);
        int n_wanted = 0, decoded_by_pts = 0;
        if (pts && skip && (wanted = malloc(sizeof(int64_t) * (size_t)n)))
            for (int i = 0; i < n; i++)
                if (indices[i] < n_pts) wanted[n_wanted++] = pts[indices[i]]; /* sorted, as indices are */
        if (pts && (!seek || indices[0] < n_pts) && (!skip || wanted) &&
            av_seek_frame(d.fmt, d.stream, pts[seek ? indices[0] : 0], AVSEEK_FLAG_BACKWARD) >= 0) {
            avcodec_flush_buffers(d.dec);
            seen = decode_frames(&d, maxi, keep_wanted, &c, path, err, cap, pts, n_pts, wanted, n_wanted);
            decoded_by_pts = 1;
        }
        int missing = 0; /* a frame the pts table has but skipping lost (it cannot, unless the stream lies): decode it all */
        for (int i = 0; wanted && seen >= 0 && i < n; i++) missing |= indices[i] < n_pts && !c.slots[i];
        free(pts);
        free(wanted);
        if (seen == -2 || (seen >= 0 && (!c.last || missing))) { /* pts did not map, or frames missing: decode from the start */
            for (int i = 0; i < n; i++) { free(c.slots[i]); c.slots[i] = NULL; }
            c.last = NULL;
            decoder_close(&d);
            if (decoder_open(&d, path, time_limit_s, &vi, err, cap)) { d.fmt = NULL; d.dec = NULL; goto done; }
            seen = -2;
            if (stats) stats->decoded_again = decoded_by_pts;
        }
    }
    if (seen == -2) seen = decode_frames(&d, maxi, keep_wanted, &c, path, err, cap, NULL, 0, NULL, 0);
    if (seen < 0) goto done;
    if (stats) stats->frames_decoded = seen;
    if (seen == 0 || !c.last) { snprintf(err, cap, "%s: no decodable frames", path); goto done; }
    size_t fsz = (size_t)vi.width * vi.height * 3;
    uint8_t *prev = NULL;
    for (int i = 0; i < n; i++) { /* indices past the end: the last frame decoded before them */
        if (c.slots[i]) prev = c.slots[i];
        const uint8_t *src = c.slots[i] ? c.slots[i] : (prev ? prev : c.last);
        uint8_t *dst = out + (size_t)i * fsz;
        place_rgb(src, c.stride, vi.width, vi.height, info->rotation, dst);
    }
    rc = 0;
done:
    for (int i = 0; c.slots && i < n; i++) free(c.slots[i]);
    free(c.slots);
    sws_freeContext(c.sws);
    decoder_close(&d);
    return rc;
}
