/* cmd_probe.c — `vclip-run probe LIST.csv --root DIR`: checks every video of
 * a dataset list up front (opens it, counts its frames, decodes its first
 * and last frame) and reports the unreadable ones with the reason. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../runtime/data/video.h"
#include "cli.h"
#include "commands.h"

#define TOOL "vclip-run probe"

int cmd_probe(int argc, char **argv)
{
    static const struct option opts[] = {{"root", 1, 0, 'r'}, {"time-limit", 1, 0, 'l'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *root = ".";
    int tl = 60, c;
    while ((c = getopt_long(argc, argv, "r:l:h", opts, NULL)) != -1) {
        if (c == 'r') root = optarg;
        else if (c == 'l') { if (cli_parse_int(optarg, 1, 86400, &tl)) { cli_error(TOOL, NULL, "--time-limit needs seconds"); return 2; } }
        else if (c == 'h') {
            printf("usage: vclip-run probe LIST.csv [--root DIR] [--time-limit S]\n"
                   "  LIST.csv: lines 'relative/path,label' (a first line 'path,...' is a header).\n"
                   "  Prints one line per unreadable video and a summary; exits 1 if any is unreadable.\n");
            return 0;
        } else return 2;
    }
    if (optind != argc - 1) { cli_error(TOOL, NULL, "expects one LIST.csv"); return 2; }
    char err[1024];
    size_t len;
    char *buf = read_file(argv[optind], &len, err, sizeof err);
    if (!buf) { cli_error(TOOL, NULL, err); return 1; }
    int total = 0, bad = 0, lineno = 0;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        lineno++;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[--l] = 0;
        char *comma = strrchr(line, ',');
        if (l && !(lineno == 1 && !strncmp(line, "path,", 5))) {
            if (!comma) { fprintf(stderr, "%s:%d: expected 'path,label'\n", argv[optind], lineno); bad++; total++; }
            else {
                *comma = 0;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", root, line);
                VideoInfo vi;
                int64_t ends[2];
                uint8_t *rgb = NULL;
                total++;
                int ok = video_probe(path, tl, &vi, err, sizeof err) == 0;
                if (ok) {
                    ends[0] = 0;
                    ends[1] = vi.frames - 1;
                    rgb = malloc((size_t)vi.width * vi.height * 3 * 2);
                    ok = rgb && video_decode_frames(path, &vi, ends, 2, tl, 0, rgb, NULL, err, sizeof err) == 0;
                    if (!rgb) snprintf(err, sizeof err, "%.900s: out of memory", path);
                }
                free(rgb);
                if (!ok) { bad++; cli_error(TOOL, "unreadable", err); }
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    printf("%d of %d videos readable%s\n", total - bad, total, bad ? "" : ": all good");
    return bad ? 1 : 0;
}
