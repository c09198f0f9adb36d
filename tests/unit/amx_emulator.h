/* amx_emulator.h — a host stand-in for the AMX tile instructions, so that
 * the GEMM's AMX kernel (runtime/cpu/gemm.c: block_amx and its A packing)
 * runs, and is checked against the reference, on CPUs without AMX.
 * test_kernels_amx.c includes this header and then gemm.c itself, with
 * VCLIP_AMX_EMULATED defined: the tile intrinsics below replace the
 * compiler's, and gemm.c's AMX probe reports the tiles usable.
 *
 * Each thread has its own eight tiles, as a core does.  The instructions
 * are taken as the Intel SDM defines them for palette 1 (16 rows of at most
 * 64 bytes), and what the hardware faults on aborts here with the reason:
 * a bad configuration (LDTILECFG's #GP), a tile used before one is loaded
 * (#UD), TDPBF16PS on tiles whose shapes do not chain or that are not three
 * different ones (#UD).  TDPBF16PS multiplies each bf16 pair in k order
 * into the f32 sum, rounding to nearest even, inputs' denormals read as
 * zero and outputs' flushed (MXCSR is not consulted).  The hardware's order
 * of the pairs inside one k step is not specified; the checks compare with
 * the reference to a tolerance, so this order only has to be a valid one.
 * Loads and stores touch exactly the bytes the instructions do, so the
 * sanitizer build catches a tile read past its buffer. */
#ifndef VCLIP_AMX_EMULATOR_H
#define VCLIP_AMX_EMULATOR_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VCLIP_AMX_EMULATED 1

typedef struct {
    int configured;
    uint8_t rows[8];
    uint16_t colsb[8];
    uint8_t data[8][16][64];
} AmxEmulatedTiles;

static _Thread_local AmxEmulatedTiles amx_tiles;

static void amx_fault(const char *instruction, const char *why)
{
    fprintf(stderr, "amx emulator: %s faults: %s\n", instruction, why);
    abort();
}

static void amx_check_tile(const char *instruction, int t)
{
    if (!amx_tiles.configured) amx_fault(instruction, "no tile configuration loaded (#UD)");
    if (t < 0 || t > 7) amx_fault(instruction, "no such tile in palette 1");
}

/* LDTILECFG: byte 0 the palette, 1 start_row, 2-15 reserved, 16-47 the
 * bytes per row of tiles 0-15, 48-63 their rows */
static inline void amx_emulated_loadconfig(const void *config)
{
    const uint8_t *c = config;
    if (c[0] == 0) { memset(&amx_tiles, 0, sizeof amx_tiles); return; } /* palette 0: tiles released */
    if (c[0] != 1) amx_fault("ldtilecfg", "palette other than 1 (#GP)");
    for (int i = 2; i < 16; i++)
        if (c[i]) amx_fault("ldtilecfg", "reserved bytes not zero (#GP)");
    for (int t = 0; t < 16; t++) {
        uint16_t colsb;
        memcpy(&colsb, c + 16 + 2 * t, sizeof colsb);
        uint8_t rows = c[48 + t];
        if (t >= 8 && (colsb || rows)) amx_fault("ldtilecfg", "tiles 8-15 configured under palette 1 (#GP)");
        if (t < 8 && (rows > 16 || colsb > 64 || (!rows) != (!colsb))) amx_fault("ldtilecfg", "a tile's rows or bytes per row out of range (#GP)");
        if (t < 8) { amx_tiles.rows[t] = rows; amx_tiles.colsb[t] = colsb; }
    }
    memset(amx_tiles.data, 0, sizeof amx_tiles.data);
    amx_tiles.configured = 1;
}

static inline void amx_emulated_release(void) { memset(&amx_tiles, 0, sizeof amx_tiles); }

static inline void amx_emulated_loadd(int t, const void *base, long stride)
{
    amx_check_tile("tileloadd", t);
    for (int r = 0; r < amx_tiles.rows[t]; r++) memcpy(amx_tiles.data[t][r], (const uint8_t *)base + r * stride, amx_tiles.colsb[t]);
}

static inline void amx_emulated_stored(int t, void *base, long stride)
{
    amx_check_tile("tilestored", t);
    for (int r = 0; r < amx_tiles.rows[t]; r++) memcpy((uint8_t *)base + r * stride, amx_tiles.data[t][r], amx_tiles.colsb[t]);
}

static inline void amx_emulated_zero(int t)
{
    amx_check_tile("tilezero", t);
    memset(amx_tiles.data[t], 0, sizeof amx_tiles.data[t]);
}

/* a bf16 word as f32, a denormal read as zero of its sign */
static inline float amx_bf16_daz(uint16_t h)
{
    uint32_t bits = (h & 0x7f80u) ? (uint32_t)h << 16 : (uint32_t)(h & 0x8000u) << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float amx_flush(float x) { return fpclassify(x) == FP_SUBNORMAL ? copysignf(0.0f, x) : x; }

/* TDPBF16PS dst += a (rows x K pairs) . b (K rows x N pairs) */
static inline void amx_emulated_dpbf16ps(int dst, int a, int b)
{
    amx_check_tile("tdpbf16ps", dst);
    amx_check_tile("tdpbf16ps", a);
    amx_check_tile("tdpbf16ps", b);
    if (dst == a || dst == b || a == b) amx_fault("tdpbf16ps", "the three tiles are not different (#UD)");
    int M = amx_tiles.rows[dst], N = amx_tiles.colsb[dst] / 4, K = amx_tiles.colsb[a] / 4;
    if (amx_tiles.rows[a] != M || amx_tiles.colsb[b] != amx_tiles.colsb[dst] || amx_tiles.rows[b] != K)
        amx_fault("tdpbf16ps", "tile shapes do not chain (#UD)");
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float acc;
            memcpy(&acc, &amx_tiles.data[dst][m][4 * n], sizeof acc);
            for (int k = 0; k < K; k++) {
                uint16_t x[2], y[2];
                memcpy(x, &amx_tiles.data[a][m][4 * k], sizeof x);
                memcpy(y, &amx_tiles.data[b][k][4 * n], sizeof y);
                acc = amx_flush(fmaf(amx_bf16_daz(x[0]), amx_bf16_daz(y[0]), acc));
                acc = amx_flush(fmaf(amx_bf16_daz(x[1]), amx_bf16_daz(y[1]), acc));
            }
            memcpy(&amx_tiles.data[dst][m][4 * n], &acc, sizeof acc);
        }
}

/* the compiler's intrinsics (functions for the configuration, macros for
 * the rest) give way to the stand-ins */
#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbf16ps
#define _tile_loadconfig(config) amx_emulated_loadconfig(config)
#define _tile_release() amx_emulated_release()
#define _tile_loadd(t, base, stride) amx_emulated_loadd(t, base, stride)
#define _tile_stored(t, base, stride) amx_emulated_stored(t, base, stride)
#define _tile_zero(t) amx_emulated_zero(t)
#define _tile_dpbf16ps(dst, a, b) amx_emulated_dpbf16ps(dst, a, b)

#endif
