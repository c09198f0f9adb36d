/* video_writer.c — see video_writer.h.  rawvideo keeps every pixel; NUT is
 * FFmpeg's own container and stores it without conversions. */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <stdio.h>
#include <string.h>
#include "video_writer.h"

static int av_fail(char *err, size_t cap, const char *path, const char *what, int rc)
{
    char msg[128];
    av_strerror(rc, msg, sizeof msg);
    snprintf(err, cap, "%s: %s: %s", path, what, msg);
    return -1;
}

int video_write_rgb(const char *path, const uint8_t *frames, int T, int w, int h, int fps, char *err, size_t cap)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    AVFormatContext *fmt = NULL;
    AVCodecContext *enc = NULL;
    AVFrame *fr = NULL;
    AVPacket *pkt = NULL;
    int rc = -1, r;
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_RAWVIDEO);
    if (!codec) { snprintf(err, cap, "%s: this FFmpeg has no rawvideo encoder", path); return -1; }
    if ((r = avformat_alloc_output_context2(&fmt, NULL, "nut", tmp)) < 0) return av_fail(err, cap, path, "no NUT muxer", r);
    AVStream *st = avformat_new_stream(fmt, NULL);
    enc = avcodec_alloc_context3(codec);
    fr = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!st || !enc || !fr || !pkt) { snprintf(err, cap, "out of memory"); goto done; }
    enc->width = w;
    enc->height = h;
    enc->pix_fmt = AV_PIX_FMT_RGB24;
    enc->time_base = (AVRational){1, fps};
    st->time_base = enc->time_base;
    if ((r = avcodec_open2(enc, codec, NULL)) < 0) { av_fail(err, cap, path, "cannot open the encoder", r); goto done; }
    if ((r = avcodec_parameters_from_context(st->codecpar, enc)) < 0) { av_fail(err, cap, path, "codec parameters", r); goto done; }
    if ((r = avio_open(&fmt->pb, tmp, AVIO_FLAG_WRITE)) < 0) { av_fail(err, cap, path, "cannot create", r); goto done; }
    if ((r = avformat_write_header(fmt, NULL)) < 0) { av_fail(err, cap, path, "cannot write the header", r); goto done; }
    fr->format = AV_PIX_FMT_RGB24;
    fr->width = w;
    fr->height = h;
    if ((r = av_frame_get_buffer(fr, 0)) < 0) { av_fail(err, cap, path, "frame buffer", r); goto done; }
    for (int t = 0; t <= T; t++) {
        if (t < T) {
            if ((r = av_frame_make_writable(fr)) < 0) { av_fail(err, cap, path, "frame buffer", r); goto done; }
            for (int y = 0; y < h; y++) memcpy(fr->data[0] + (size_t)y * (size_t)fr->linesize[0], frames + ((size_t)t * h + y) * (size_t)w * 3, (size_t)w * 3);
            fr->pts = t;
        }
        if ((r = avcodec_send_frame(enc, t < T ? fr : NULL)) < 0) { av_fail(err, cap, path, "encoding", r); goto done; }
        while ((r = avcodec_receive_packet(enc, pkt)) == 0) {
            av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
            pkt->stream_index = st->index;
            if ((r = av_interleaved_write_frame(fmt, pkt)) < 0) { av_fail(err, cap, path, "writing", r); goto done; }
        }
        if (r != AVERROR(EAGAIN) && r != AVERROR_EOF) { av_fail(err, cap, path, "encoding", r); goto done; }
    }
    if ((r = av_write_trailer(fmt)) < 0) { av_fail(err, cap, path, "writing the trailer", r); goto done; }
    rc = 0;
done:
    if (fmt && fmt->pb) avio_closep(&fmt->pb);
    avformat_free_context(fmt);
    avcodec_free_context(&enc);
    av_frame_free(&fr);
    av_packet_free(&pkt);
    if (rc == 0 && rename(tmp, path)) { snprintf(err, cap, "%s: cannot rename the temporary file", path); rc = -1; }
    if (rc) remove(tmp);
    return rc;
}
