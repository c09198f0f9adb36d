/* shape_world.c — see shape_world.h.  Everything is drawn with 4x4
 * supersampled coverage so that sub-pixel motion is visible; all randomness
 * (background, colour jitter, place, size) comes from the seed. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "shape_world.h"

const char *const sw_colour_names[SW_COLOURS] = {"red", "green", "blue", "yellow", "purple", "orange"};
const char *const sw_shape_names[SW_SHAPES] = {"circle", "square", "triangle"};
const char *const sw_motion_names[SW_MOTIONS] = {"moving left", "moving right", "moving up", "moving down", "growing", "shrinking"};
static const uint8_t rgb[SW_COLOURS][3] = {{220, 40, 40}, {40, 190, 60}, {50, 80, 230}, {230, 210, 40}, {150, 60, 200}, {240, 140, 30}};

int sw_class_of(const SwItem *it) { return (it->colour * SW_SHAPES + it->shape) * SW_MOTIONS + it->motion; }

SwItem sw_item_of_class(int cls)
{
    SwItem it = {cls / (SW_SHAPES * SW_MOTIONS), cls / SW_MOTIONS % SW_SHAPES, cls % SW_MOTIONS};
    return it;
}

void sw_describe(const SwItem *it, char *out, size_t cap)
{
    if (it->motion < 0) snprintf(out, cap, "a %s %s", sw_colour_names[it->colour], sw_shape_names[it->shape]);
    else snprintf(out, cap, "a %s %s %s", sw_colour_names[it->colour], sw_shape_names[it->shape], sw_motion_names[it->motion]);
}

typedef struct { uint64_t s; } Rng;
static double uniform(Rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Is (x, y) inside the shape centred at (cx, cy) with radius r? */
static int inside(int shape, double x, double y, double cx, double cy, double r)
{
    double dx = x - cx, dy = y - cy;
    if (shape == 0) return dx * dx + dy * dy <= r * r;
    if (shape == 1) return fabs(dx) <= 0.85 * r && fabs(dy) <= 0.85 * r;
    if (dy < -r || dy > 0.8 * r) return 0; /* triangle, apex up */
    return fabs(dx) <= (dy + r) / 1.8 * 1.1;
}

typedef struct { double bg[3], col[3]; } Look;

static void draw_background(uint8_t *img, int S, const Look *lk, Rng *r)
{
    for (int i = 0; i < S * S; i++)
        for (int c = 0; c < 3; c++) {
            double v = lk->bg[c] + (uniform(r) - 0.5) * 16;
            img[i * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
}

/* Blends the shape over img with opacity a. */
static void draw_shape(uint8_t *img, int S, int shape, double cx, double cy, double rad, const Look *lk, double a)
{
    int x0 = (int)floor(cx - rad - 1), x1 = (int)ceil(cx + rad + 1), y0 = (int)floor(cy - rad - 1), y1 = (int)ceil(cy + rad + 1);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > S) x1 = S;
    if (y1 > S) y1 = S;
    for (int y = y0; y < y1; y++) /* the bounding box: every shape fits in a circle of radius rad */
        for (int x = x0; x < x1; x++) {
            int hits = 0;
            for (int sy = 0; sy < 4; sy++)
                for (int sx = 0; sx < 4; sx++) hits += inside(shape, x + (sx + 0.5) / 4, y + (sy + 0.5) / 4, cx, cy, rad);
            if (!hits) continue;
            double w = a * hits / 16.0;
            uint8_t *p = img + (y * S + x) * 3;
            for (int c = 0; c < 3; c++) p[c] = (uint8_t)(p[c] * (1 - w) + lk->col[c] * w + 0.5);
        }
}

static void look(const SwItem *it, Rng *r, Look *lk)
{
    double shade = 30 + 40 * uniform(r);
    for (int c = 0; c < 3; c++) {
        lk->bg[c] = shade + (uniform(r) - 0.5) * 12;
        double v = rgb[it->colour][c] + (uniform(r) - 0.5) * 30;
        lk->col[c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
}

/* Per-frame displacement (dx, dy) and radius change of a motion. */
static void motion_step(int motion, double *dx, double *dy, double *dr)
{
    *dx = motion == 0 ? -1 : motion == 1 ? 1 : 0;
    *dy = motion == 2 ? -1 : motion == 3 ? 1 : 0;
    *dr = motion == 4 ? 1 : motion == 5 ? -1 : 0;
}

/* A start (centre, radius) such that T frames of the motion stay inside. */
static void place(int motion, int T, int S, double speed, double grow, Rng *r, double *cx, double *cy, double *rad)
{
    double dx, dy, dr;
    motion_step(motion < 0 ? 0 : motion, &dx, &dy, &dr);
    if (motion < 0) dx = dy = dr = 0;
    double r0 = dr > 0 ? 3.0 + uniform(r) * 1.5 : dr < 0 ? 3.0 + grow * (T - 1) + uniform(r) * 1.5 : 3.5 + uniform(r) * 3;
    double r1 = r0 + dr * grow * (T - 1), rmax = r0 > r1 ? r0 : r1, span = speed * (T - 1);
    double lo_x = rmax + 1 + (dx < 0 ? span : 0), hi_x = S - rmax - 1 - (dx > 0 ? span : 0);
    double lo_y = rmax + 1 + (dy < 0 ? span : 0), hi_y = S - rmax - 1 - (dy > 0 ? span : 0);
    *cx = lo_x + (hi_x - lo_x) * uniform(r);
    *cy = lo_y + (hi_y - lo_y) * uniform(r);
    *rad = r0;
}

/* A video's draws from its seed, in order: the look, the speed (0.6x to
 * 1.4x, which also scales growing and shrinking), the start; then the
 * background noise of each frame from the same stream. */
typedef struct { Rng r; Look lk; double pace, speed, grow, cx, cy, rad; } VideoPlan;

static void plan_video(const SwItem *it, int T, int S, uint64_t seed, VideoPlan *vp)
{
    vp->r = (Rng){seed * 0x2545F4914F6CDD1Dull + 17};
    look(it, &vp->r, &vp->lk);
    vp->pace = 0.6 + 0.8 * uniform(&vp->r);
    vp->speed = S / 24.0 * vp->pace;
    vp->grow = S / 64.0 * vp->pace;
    place(it->motion, T, S, vp->speed, vp->grow, &vp->r, &vp->cx, &vp->cy, &vp->rad);
}

void sw_render_video(const SwItem *it, int T, int S, uint64_t seed, uint8_t *out)
{
    VideoPlan vp;
    plan_video(it, T, S, seed, &vp);
    double dx, dy, dr;
    motion_step(it->motion, &dx, &dy, &dr);
    for (int t = 0; t < T; t++) {
        uint8_t *f = out + (size_t)t * S * S * 3;
        draw_background(f, S, &vp.lk, &vp.r);
        draw_shape(f, S, it->shape, vp.cx + dx * vp.speed * t, vp.cy + dy * vp.speed * t, vp.rad + dr * vp.grow * t, &vp.lk, 1.0);
    }
}

/* Ways to say each motion (sw_motion_names' order). */
static const char *const motion_words[SW_MOTIONS][3] = {
    {"moving left", "sliding to the left", "drifting left"},   {"moving right", "sliding to the right", "drifting right"},
    {"moving up", "rising", "drifting upwards"},                {"moving down", "falling", "sinking"},
    {"growing", "getting bigger", "expanding"},                 {"shrinking", "getting smaller", "contracting"},
};

void sw_caption_video(const SwItem *it, int T, int S, uint64_t seed, char *out, size_t cap)
{
    VideoPlan vp;
    plan_video(it, T, S, seed, &vp);
    Rng w = {seed ^ 0xCA9710Bull}; /* the wording: a stream of its own, the video is unchanged */
    const char *colour = sw_colour_names[it->colour], *shape = sw_shape_names[it->shape];
    const char *motion = it->motion >= 0 ? motion_words[it->motion][(int)(uniform(&w) * 3)] : "standing still";
    const char *pace = vp.pace < 0.85 ? (uniform(&w) < 0.5 ? " slowly" : " at a slow pace")
                       : vp.pace > 1.15 ? (uniform(&w) < 0.5 ? " quickly" : " fast") : "";
    /* the start: which third of the frame, across and down */
    static const char *const across[3] = {"left", "centre", "right"}, *const down[3] = {"top", "middle", "bottom"};
    int ax = (int)(3 * vp.cx / S), ay = (int)(3 * vp.cy / S);
    ax = ax < 0 ? 0 : ax > 2 ? 2 : ax;
    ay = ay < 0 ? 0 : ay > 2 ? 2 : ay;
    char where[32];
    if (ax == 1 && ay == 1) snprintf(where, sizeof where, "the centre");
    else if (ay == 1) snprintf(where, sizeof where, "the %s", across[ax]);
    else if (ax == 1) snprintf(where, sizeof where, "the %s", down[ay]);
    else snprintf(where, sizeof where, "the %s %s", down[ay], across[ax]);
    double r_mid = vp.rad + (it->motion == 4 ? 0.5 : it->motion == 5 ? -0.5 : 0) * vp.grow * (T - 1);
    const char *size = r_mid < 4.2 ? "small" : r_mid > 5.6 ? "large" : "medium-sized";
    double shade = (vp.lk.bg[0] + vp.lk.bg[1] + vp.lk.bg[2]) / 3;
    const char *bg = shade < 43 ? "dark" : shade < 57 ? "dark grey" : "grey";
    switch ((int)(uniform(&w) * 4)) {
    case 0: snprintf(out, cap, "a %s %s %s %s%s, starting from %s, on a %s background", size, colour, shape, motion, pace, where, bg); break;
    case 1: snprintf(out, cap, "on a %s background, a %s %s starts in %s and keeps %s%s", bg, colour, shape, where, motion, pace); break;
    case 2: snprintf(out, cap, "the video shows a %s %s, %s, %s%s from %s", size, shape, colour, motion, pace, where); break;
    default: snprintf(out, cap, "a %s %s %s%s across a %s backdrop, first seen in %s", colour, shape, motion, pace, bg, where); break;
    }
}

void sw_render_image(const SwItem *it, int S, uint64_t seed, uint8_t *out)
{
    Rng r = {seed * 0x9E3779B97F4A7C15ull + 5};
    Look lk;
    look(it, &r, &lk);
    double speed = S / 24.0, grow = S / 64.0, cx, cy, rad, dx, dy, dr;
    const int T = 4; /* the trail: three earlier positions, fading */
    place(it->motion, T, S, speed, grow, &r, &cx, &cy, &rad);
    draw_background(out, S, &lk, &r);
    if (it->motion < 0) { draw_shape(out, S, it->shape, cx, cy, rad, &lk, 1.0); return; }
    motion_step(it->motion, &dx, &dy, &dr);
    double ex = cx + dx * speed * (T - 1), ey = cy + dy * speed * (T - 1), er = rad + dr * grow * (T - 1);
    if (it->motion == 4) { /* growing: the earlier, smaller outlines show inside the shape, darker */
        draw_shape(out, S, it->shape, ex, ey, er, &lk, 1.0);
        Look dark = lk;
        for (int c = 0; c < 3; c++) dark.col[c] = 0.45 * lk.col[c] + 0.55 * lk.bg[c];
        for (int t = T - 2; t >= 0; t--) draw_shape(out, S, it->shape, cx, cy, rad + dr * grow * t, t % 2 ? &lk : &dark, 0.8);
        return;
    }
    for (int t = 0; t < T - 1; t++) /* the earlier places (or larger sizes), fading in */
        draw_shape(out, S, it->shape, cx + dx * speed * t, cy + dy * speed * t, rad + dr * grow * t, &lk, 0.3 + 0.2 * t);
    draw_shape(out, S, it->shape, ex, ey, er, &lk, 1.0);
}
