/* fuzz_file.h — our file parsers take paths, so each fuzz input is written
 * to one file per process in /dev/shm (memory; /tmp where there is none)
 * before the parser reads it.  Included by the targets that need it. */
#ifndef VCLIP_FUZZ_FILE_H
#define VCLIP_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The input as the file PATH (suffix: the extension parsers may look at). */
static const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/vclip-fuzz-%d%s", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) { perror(path); abort(); }
    return path;
}

#endif
