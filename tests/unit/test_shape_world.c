/* test_shape_world.c — the demo world's pseudo-captions: each names the
 * video's colour and shape and one phrasing of its motion, their wording
 * varies from video to video of one class, a seed always gives the same
 * caption, and captioning leaves the video itself as it was. */
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "../../runtime/data/shape_world.h"

static const char *const motion_phrases[SW_MOTIONS][3] = {
    {"moving left", "to the left", "drifting left"}, {"moving right", "to the right", "drifting right"},
    {"moving up", "rising", "upwards"}, {"moving down", "falling", "sinking"},
    {"growing", "bigger", "expanding"}, {"shrinking", "smaller", "contracting"},
};

int main(void)
{
    enum { T = 8, S = 32, N = 24 };
    uint8_t *a = malloc(T * S * S * 3), *b = malloc(T * S * S * 3);
    for (int cls = 0; cls < SW_CLASSES; cls += 7) {
        SwItem it = sw_item_of_class(cls);
        char caps[N][256];
        int distinct = 0, paced = 0;
        for (int i = 0; i < N; i++) {
            uint64_t seed = 1000u * (uint64_t)cls + (uint64_t)i;
            sw_caption_video(&it, T, S, seed, caps[i], sizeof caps[i]);
            int motion = 0;
            for (int k = 0; k < 3; k++) motion |= strstr(caps[i], motion_phrases[it.motion][k]) != NULL;
            CHECK(strstr(caps[i], sw_colour_names[it.colour]) && strstr(caps[i], sw_shape_names[it.shape]) && motion,
                  "class %d: '%s' misses its colour, shape or motion", cls, caps[i]);
            paced += strstr(caps[i], "slow") || strstr(caps[i], "quick") || strstr(caps[i], "fast");
            int seen_before = 0;
            for (int j = 0; j < i; j++) seen_before |= !strcmp(caps[i], caps[j]);
            distinct += !seen_before;
            char again[256];
            sw_caption_video(&it, T, S, seed, again, sizeof again);
            CHECK(!strcmp(again, caps[i]), "a seed gives one caption");
            sw_render_video(&it, T, S, seed, a);
            sw_render_video(&it, T, S, seed, b);
            CHECK(!memcmp(a, b, (size_t)T * S * S * 3), "a seed gives one video");
        }
        CHECK(distinct >= N / 2, "class %d: only %d distinct captions of %d videos", cls, distinct, N);
        CHECK(paced > 0 && paced < N, "class %d: %d of %d captions mention the speed", cls, paced, N);
    }
    free(a);
    free(b);
    return TEST_SUMMARY();
}
