/* png_sheet.h — a contact sheet of preprocessed frames, for people to look at. */
#ifndef VCLIP_PNG_SHEET_H
#define VCLIP_PNG_SHEET_H
#include <stddef.h>
/* clips [rows][cols][3][size][size] of CLIP-normalized floats -> an RGB PNG
 * with rows x cols tiles and 2-pixel gaps.  Written atomically. 0 or -1. */
int png_contact_sheet(const char *path, const float *clips, int rows, int cols, int size, char *err, size_t cap);
#endif
