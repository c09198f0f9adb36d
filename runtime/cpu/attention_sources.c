/* attention_sources.c — which batch rows a query row's keys and values come
 * from.  Without a temporal window: itself.  With frames=T and window w: the
 * frames t+1..t+w, t-1..t-w, then t (the released code's order); frames
 * outside the clip are -1 (zero-filled) or left out (boundary=1, masked). */
#include "kernels.h"

int attention_sources(const AttentionParams *p, int64_t b, int64_t *src)
{
    if (!p->frames || !p->window) { src[0] = b; return 1; }
    int64_t t = b % p->frames, base = b - t;
    int n = 0;
    for (int pass = 0; pass < 3; pass++) {
        int64_t from = pass == 2 ? 0 : 1, to = pass == 2 ? 0 : p->window;
        for (int64_t o = from; o <= to; o++) {
            int64_t f = pass == 0 ? t + o : pass == 1 ? t - o : t;
            int inside = f >= 0 && f < p->frames;
            if (inside) src[n++] = base + f;
            else if (p->boundary == 0) src[n++] = -1;
        }
    }
    return n;
}
