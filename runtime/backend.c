/* backend.c — see backend.h: the names of targets and precisions, and the
 * backend of each target. */
#include <string.h>
#include "backend.h"

static const char *const target_names[] = {"cpu", "cuda"};
static const char *const precision_names[] = {"fp32", "bf16", "fp16", "auto"};

int target_parse(const char *s, Target *t)
{
    for (int i = 0; i < 2; i++)
        if (s && !strcmp(s, target_names[i])) { *t = (Target)i; return 0; }
    return -1;
}

int precision_parse(const char *s, Precision *p)
{
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, precision_names[i])) { *p = (Precision)i; return 0; }
    return -1;
}

const char *target_name(Target t) { return (unsigned)t < 2 ? target_names[t] : "?"; }
const char *precision_name(Precision p) { return (unsigned)p < 4 ? precision_names[p] : "?"; }

const Backend *backend_for(Target t) { return t == TARGET_CUDA ? &cuda_backend : &cpu_backend; }
