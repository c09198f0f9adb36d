/* text_clean.h — CLIP's text cleanup (ftfy + HTML unescape + whitespace +
 * lower case), as open_clip does it in Python. */
#ifndef VCLIP_TEXT_CLEAN_H
#define VCLIP_TEXT_CLEAN_H

#include <stddef.h>

/* Cleans len bytes of UTF-8 (invalid bytes read as U+FFFD); returns a
 * malloc'd NUL-terminated UTF-8 string, or NULL when out of memory. */
char *clip_clean_text(const char *text, size_t len);

#endif
