/* feature_cache.c — see feature_cache.h.  Entries are raw f32 arrays with a
 * small header (magic, count); a wrong count or a short file is a miss. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "feature_cache.h"
#include "../../ir/base.h"

int feature_cache_open(FeatureCache *c, const char *model_path, const char *settings, char *err, size_t cap)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(model_path, "rb");
    if (!f) { snprintf(err, cap, "%s: %s", model_path, strerror(errno)); return -1; }
    uint64_t h = FNV_OFFSET;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) h = fnv1a(h, buf, n);
    fclose(f);
    h = fnv1a(h, settings, strlen(settings));
    char sub[64];
    snprintf(sub, sizeof sub, "features/%016llx", (unsigned long long)h);
    if (vclip_cache_dir(sub, c->dir, sizeof c->dir, err, cap)) return -1;
    c->enabled = 1;
    return 0;
}

static void entry_path(const FeatureCache *c, const char *video, char *out, size_t cap)
{
    struct stat st;
    uint64_t h = fnv1a(FNV_OFFSET, video, strlen(video));
    if (stat(video, &st) == 0) {
        h = fnv1a(h, &st.st_size, sizeof st.st_size);
        h = fnv1a(h, &st.st_mtim, sizeof st.st_mtim);
    }
    snprintf(out, cap, "%s/%016llx.f32", c->dir, (unsigned long long)h);
}

int feature_cache_get(const FeatureCache *c, const char *video, float *out, size_t count)
{
    if (!c->enabled) return 0;
    char path[4200];
    entry_path(c, video, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint64_t hdr[2];
    int hit = fread(hdr, sizeof hdr, 1, f) == 1 && hdr[0] == 0x7663666561747331ull && hdr[1] == count &&
              fread(out, sizeof(float), count, f) == count;
    fclose(f);
    return hit;
}

void feature_cache_put(const FeatureCache *c, const char *video, const float *feat, size_t count)
{
    if (!c->enabled) return;
    char path[4200], err[64];
    entry_path(c, video, path, sizeof path);
    AtomicFile af;
    if (atomic_open(&af, path, "wb", err, sizeof err)) return;
    uint64_t hdr[2] = {0x7663666561747331ull, count};
    if (fwrite(hdr, sizeof hdr, 1, af.f) == 1 && fwrite(feat, sizeof(float), count, af.f) == count) atomic_commit(&af, err, sizeof err);
    else atomic_abort(&af);
}
