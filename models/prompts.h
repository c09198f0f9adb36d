/* prompts.h — class lists, class-name normalization and prompt templates
 * for zero-shot text features (DESIGN.md §2). */
#ifndef VCLIP_PROMPTS_H
#define VCLIP_PROMPTS_H

#include <stddef.h>

typedef struct { char **items; size_t n; } StringList;
void string_list_free(StringList *l);

/* The 28 default templates: 4 prefixes x 7 forms, each ending with '.'. */
void prompts_default_templates(StringList *out);
/* One template per line, each containing "{}" exactly once. 0 or -1 with a
 * message naming the file and line. */
int prompts_load_templates(const char *path, StringList *out, char *err, size_t cap);

/* Class names from a text file (one per line) or an index-to-class JSON
 * object {"0": "name", ...} (indices 0..N-1, each once). */
int prompts_load_classes(const char *path, StringList *out, char *err, size_t cap);

/* "ApplyEyeMakeup" -> "Apply Eye Makeup", "brush_hair" -> "brush hair";
 * names that already contain spaces are left as they are.  malloc'd. */
char *prompts_normalize_class(const char *name);

/* template with "{}" replaced by name; malloc'd. */
char *prompts_fill(const char *template_, const char *name);

#endif
