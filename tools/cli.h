/* cli.h — what the command-line tools share: error printing that escapes
 * control bytes from untrusted text, integer parsing, finding the
 * data files installed next to the binaries. */
#ifndef VCLIP_CLI_H
#define VCLIP_CLI_H

#include <stddef.h>
#include "../ir/base.h"

/* "TOOL: PREFIX: MSG\n" on stderr with control bytes shown as \xNN. */
void cli_error(const char *tool, const char *prefix, const char *msg);
int cli_parse_int(const char *s, int lo, int hi, int *out);
/* "TOOL: MSG" on stderr; returns 2, the exit status of a usage error. */
int cli_usage_error(const char *tool, const char *msg);
/* Path of a data file shipped in the source tree, given relative to the
 * repository root: looked up next to the binary (BIN/.., BIN/../..) and
 * in the source folder it was built from.  malloc'd, NULL if not found. */
char *cli_data_path(const char *relative);
/* Whole file into memory, NUL-terminated; NULL with a message. */
char *cli_read_file(const char *path, size_t *len, char *err, size_t cap);

#endif
