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

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 1099511628211ull; }
    return h;
}

static int mkdirs(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') { *p = 0; if (mkdir(tmp, 0777) && errno != EEXIST) return -1; *p = '/'; }
    return (mkdir(tmp, 0777) && errno != EEXIST) ? -1 : 0;
}

int feature_cache_open(FeatureCache *c, const char *model_path, const char *settings, char *err, size_t cap)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(model_path, "rb");
    if (!f) { snprintf(err, cap, "%s: %s", model_path, strerror(errno)); return -1; }
    uint64_t h = 1469598103934665603ull;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) h = fnv(h, buf, n);
    fclose(f);
    h = fnv(h, settings, strlen(settings));
    char sub[64];
    snprintf(sub, sizeof sub, "features/%016llx", (unsigned long long)h);
    if (vclip_cache_dir(sub, c->dir, sizeof c->dir, err, cap)) return -1;
    c->enabled = 1;
    return 0;
}

int vclip_cache_dir(const char *sub, char *out, size_t cap, char *err, size_t ecap)
{
    const char *base = getenv("VCLIP_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (base && *base) snprintf(out, cap, "%s/%s", base, sub);
    else if (xdg && *xdg) snprintf(out, cap, "%s/vclip/%s", xdg, sub);
    else snprintf(out, cap, "%s/.cache/vclip/%s", home ? home : "/tmp", sub);
    if (mkdirs(out)) { snprintf(err, ecap, "cannot create the cache folder %s: %s", out, strerror(errno)); return -1; }
    return 0;
}

static void entry_path(const FeatureCache *c, const char *video, char *out, size_t cap)
{
    struct stat st;
    uint64_t h = fnv(1469598103934665603ull, video, strlen(video));
    if (stat(video, &st) == 0) {
        h = fnv(h, &st.st_size, sizeof st.st_size);
        h = fnv(h, &st.st_mtim, sizeof st.st_mtim);
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
    char path[4200], tmp[4300];
    entry_path(c, video, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    uint64_t hdr[2] = {0x7663666561747331ull, count};
    int ok = fwrite(hdr, sizeof hdr, 1, f) == 1 && fwrite(feat, sizeof(float), count, f) == count;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path)) unlink(tmp);
}
