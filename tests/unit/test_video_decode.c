/* test_video_decode.c — video.c's RGB frames against the ffmpeg CLI's
 * (the same frames, bit for bit: every column, also where the width is not
 * a multiple of 8), and skipping the pictures nothing refers to changes no
 * frame that was asked for: on the four real clips and on H.264 (B-pyramid)
 * and HEVC files made here with the ffmpeg CLI, every index set decodes to
 * the same bytes with and without VIDEO_DECODE_EVERY_FRAME, and where the
 * stream has such pictures the skipping decode really produced fewer, without
 * falling back to a second pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "../../runtime/data/video.h"

#define MAX_IDX 64

typedef struct {
    const char *name;
    int64_t idx[MAX_IDX];
    int n;
    int sparse; /* leaves enough unasked pictures that skipping must decode fewer */
} IndexSet;

/* Sorted index sets like the samplers make, and awkward ones. */
static int index_sets(int64_t frames, IndexSet *s)
{
    int k = 0;
    s[k] = (IndexSet){"test views (24 spread)", {0}, 24, 1};
    for (int i = 0; i < 24; i++) s[k].idx[i] = i * (frames - 1) / 23;
    k++;
    s[k] = (IndexSet){"train clip (8, stride 16, from 40)", {0}, 8, 1};
    for (int i = 0; i < 8; i++) s[k].idx[i] = 40 + 16 * i < frames ? 40 + 16 * i : frames - 1;
    k++;
    s[k] = (IndexSet){"dense run 30..45", {0}, 16, 0};
    for (int i = 0; i < 16; i++) s[k].idx[i] = 30 + i;
    k++;
    s[k] = (IndexSet){"every 5th from 0", {0}, 0, 1};
    for (int64_t i = 0; i < frames && s[k].n < MAX_IDX; i += 5) s[k].idx[s[k].n++] = i;
    k++;
    s[k] = (IndexSet){"repeats and past the end", {3, 3, 27, 60, 60, frames - 1, frames + 4, frames + 4}, 8, 0};
    k++;
    return k;
}

/* Frames 0, 7, 40 and 101 (those that exist) against the ffmpeg CLI's
 * RGB24 conversion of the same decoded pictures (swscale, bilinear). */
static void check_against_ffmpeg(const char *path, const VideoInfo *vi, const char *dir)
{
    int64_t idx[4];
    int n = 0;
    static const int64_t want[4] = {0, 7, 40, 101};
    for (int i = 0; i < 4; i++)
        if (want[i] < vi->frames) idx[n++] = want[i];
    char ref[1024], cmd[2048], sel[256] = "", err[512];
    for (int i = 0; i < n; i++) snprintf(sel + strlen(sel), sizeof sel - strlen(sel), "%seq(n\\,%lld)", i ? "+" : "", (long long)idx[i]);
    snprintf(ref, sizeof ref, "%s/ref.rgb", dir);
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -y -i '%s' -vf \"select='%s'\" -vsync 0 -sws_flags bilinear -f rawvideo -pix_fmt rgb24 '%s'",
             path, sel, ref);
    if (system(cmd)) { CHECK(0, "ffmpeg failed: %s", cmd); return; }
    size_t fsz = (size_t)vi->width * vi->height * 3;
    uint8_t *ours = malloc(fsz * 4), *theirs = malloc(fsz * 4);
    FILE *f = fopen(ref, "rb");
    size_t got = f ? fread(theirs, 1, fsz * 4, f) : 0;
    if (f) fclose(f);
    CHECK(got == fsz * (size_t)n, "%s: ffmpeg gave %zu bytes, not %d frames of %zu", path, got, n, fsz);
    int rc = video_decode_frames(path, vi, idx, n, 60, 0, ours, NULL, err, sizeof err);
    CHECK(rc == 0, "%s: %s", path, err);
    for (int i = 0; !rc && got == fsz * (size_t)n && i < n; i++) {
        size_t diff = 0, first = 0;
        for (size_t j = 0; j < fsz; j++)
            if (ours[i * fsz + j] != theirs[i * fsz + j] && !diff++) first = j;
        CHECK(diff == 0, "%s: frame %lld: %zu bytes differ from ffmpeg's, the first at row %zu, column %zu", path, (long long)idx[i],
              diff, first / (vi->width * 3), first % (vi->width * 3) / 3);
    }
    free(ours);
    free(theirs);
}

static void check_video(const char *path, int expect_skipping, const char *dir)
{
    char err[512];
    VideoInfo vi;
    if (video_probe(path, 60, &vi, err, sizeof err)) {
        CHECK(0, "%s", err);
        return;
    }
    check_against_ffmpeg(path, &vi, dir);
    IndexSet sets[8];
    int ns = index_sets(vi.frames, sets);
    size_t fsz = (size_t)vi.width * vi.height * 3;
    uint8_t *a = malloc(fsz * MAX_IDX), *b = malloc(fsz * MAX_IDX);
    for (int s = 0; s < ns; s++) {
        VideoDecodeStats skipping, every;
        memset(a, 0x11, fsz * MAX_IDX);
        memset(b, 0x22, fsz * MAX_IDX);
        int ra = video_decode_frames(path, &vi, sets[s].idx, sets[s].n, 60, 0, a, &skipping, err, sizeof err);
        CHECK(ra == 0, "%s, %s: %s", path, sets[s].name, err);
        int rb = video_decode_frames(path, &vi, sets[s].idx, sets[s].n, 60, VIDEO_DECODE_EVERY_FRAME, b, &every, err, sizeof err);
        CHECK(rb == 0, "%s, %s (every frame): %s", path, sets[s].name, err);
        if (ra || rb) continue;
        for (int i = 0; i < sets[s].n; i++)
            CHECK(!memcmp(a + i * fsz, b + i * fsz, fsz), "%s, %s: frame %lld differs from the full decode's", path, sets[s].name,
                  (long long)sets[s].idx[i]);
        if (expect_skipping)
            CHECK(!skipping.decoded_again, "%s, %s: the skipping decode fell back to a second pass", path, sets[s].name);
        if (expect_skipping && sets[s].sparse)
            CHECK(skipping.frames_decoded < every.frames_decoded, "%s, %s: %lld pictures decoded, as many as without skipping (%lld)",
                  path, sets[s].name, (long long)skipping.frames_decoded, (long long)every.frames_decoded);
        if (!expect_skipping)
            CHECK(skipping.frames_decoded == every.frames_decoded, "%s, %s: %lld pictures against %lld: this codec skips nothing",
                  path, sets[s].name, (long long)skipping.frames_decoded, (long long)every.frames_decoded);
        printf("%-28s %-36s pictures decoded %4lld, every frame %4lld\n", strrchr(path, '/') + 1, sets[s].name,
               (long long)skipping.frames_decoded, (long long)every.frames_decoded);
    }
    free(a);
    free(b);
}

/* A video made with the ffmpeg CLI into dir; 0 when it could not be made
 * (a failed check, not a skip: the suite installs ffmpeg with these encoders). */
static int make_video(const char *dir, const char *name, const char *args, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -y -f lavfi -i testsrc2=size=320x240:rate=30 -t 8 %s '%s'", args, path);
    int ok = system(cmd) == 0;
    CHECK(ok, "could not make %s with: %s", name, cmd);
    return ok;
}

int main(void)
{
    /* which streams have pictures nothing refers to: the two MP4s are H.264 with B-frames; the MKV is
     * H.264 without B-frames, every picture a reference; the AVI is MPEG-4 part 2, which we never skip */
    static const struct { const char *name; int skips; } real[] = {
        {"arm_wrestling.mp4", 1}, {"cleaning_pool.mp4", 1}, {"flipping_pancake.mkv", 0}, {"apply_eye_makeup.avi", 0}};
    char dir[] = "/tmp/vclip_video_decode_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "no temporary directory"); return TEST_SUMMARY(); }
    char path[1024];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/tests/fixtures/videos/%s", VCLIP_DATA_DIR, real[i].name);
        check_video(path, real[i].skips, dir);
    }
    if (make_video(dir, "pyramid.mkv", "-c:v libx264 -bf 3 -b-pyramid normal -g 48 -pix_fmt yuv420p", path, sizeof path))
        check_video(path, 1, dir);
    if (make_video(dir, "hevc.mp4", "-c:v libx265 -x265-params log-level=error:bframes=4 -pix_fmt yuv420p", path, sizeof path))
        check_video(path, 1, dir);
    if (make_video(dir, "intra.mp4", "-c:v libx264 -g 1 -pix_fmt yuv420p", path, sizeof path)) check_video(path, 0, dir);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path)) fprintf(stderr, "could not remove %s\n", dir);
    return TEST_SUMMARY();
}
