/* shape_world.h — the demo's procedurally generated world: coloured shapes
 * on a noisy background, as still images with captions (CLIP pretraining)
 * and as short videos whose class is colour x shape x motion.
 *
 * A still image shows motion only as a fading trail behind the shape, which
 * is how the image model learns the words "moving left" or "growing".  The
 * videos have no trails: the shape starts at a random place and size and
 * moves at a random speed, so no single frame tells its motion, only the
 * change across frames does.  Each video can be captioned (pseudo-captions,
 * as Open-VCLIP++ makes them for Kinetics). */
#ifndef VCLIP_SHAPE_WORLD_H
#define VCLIP_SHAPE_WORLD_H

#include <stdint.h>

#define SW_COLOURS 6
#define SW_SHAPES 3
#define SW_MOTIONS 6
#define SW_CLASSES (SW_COLOURS * SW_SHAPES * SW_MOTIONS)

extern const char *const sw_colour_names[SW_COLOURS];
extern const char *const sw_shape_names[SW_SHAPES];
extern const char *const sw_motion_names[SW_MOTIONS];

typedef struct { int colour, shape, motion; } SwItem; /* motion -1: still */

/* Class index of a video item and back. */
int sw_class_of(const SwItem *it);
SwItem sw_item_of_class(int cls);
/* "a red circle moving left" (or "a red circle"); writes at most cap bytes. */
void sw_describe(const SwItem *it, char *out, size_t cap);

/* A still image, [S, S, 3] uint8 (RGB, row-major): trails show motion. */
void sw_render_image(const SwItem *it, int S, uint64_t seed, uint8_t *out);
/* T frames [T, S, S, 3] uint8 of the item moving, at a speed of its own. */
void sw_render_video(const SwItem *it, int T, int S, uint64_t seed, uint8_t *out);
/* A caption of that very video, as a frame captioner plus an LLM might
 * write it: its colour, shape and motion, and what its seed decided (speed,
 * size, where it starts, the background), in wording that varies from video
 * to video.  Writes at most cap bytes. */
void sw_caption_video(const SwItem *it, int T, int S, uint64_t seed, char *out, size_t cap);

#endif
