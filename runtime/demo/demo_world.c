/* demo_world.c — the demo world's videos: the plan of sizes, seeded test
 * and training items, and the test splits written as files (see demo.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "demo.h"
#include "../data/video_writer.h"
#include "../safetensors.h"

void demo_plan(DemoPlan *p, int quick)
{
    *p = (DemoPlan){.clip = {.image = 32, .patch = 8, .width = 64, .layers = 2, .heads = 2, .context = 16, .vocab = 49408,
                             .text_width = 64, .text_layers = 2, .text_heads = 2, .embed = 32},
                    .frames = 8, .pre_batch = 64, .train_per_class = 8, .test_per_class = 8, .ft_batch = 8, .ft_epochs = 12,
                    .pre_steps = 4000, .pre_lr = 1e-3, .ft_lr = 3e-4,
                    .caption_weight = 1.0}; /* chosen on validation videos (docs/training.md); the paper found 4 best on K400 */
    if (quick) { p->pre_steps = 6; p->pre_batch = 16; p->train_per_class = 1; p->test_per_class = 1; p->ft_epochs = 2; }
}

uint64_t demo_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* n videos per class of the classes whose colour is in [c0, c1), labels relative to c0's first class */
DemoVideo *demo_videos(int c0, int c1, int per_class, uint64_t salt, size_t *n)
{
    *n = (size_t)(c1 - c0) * SW_SHAPES * SW_MOTIONS * (size_t)per_class;
    DemoVideo *v = calloc(*n + 1, sizeof *v);
    size_t k = 0;
    for (int cls = c0 * SW_SHAPES * SW_MOTIONS; v && cls < c1 * SW_SHAPES * SW_MOTIONS; cls++)
        for (int i = 0; i < per_class; i++) {
            v[k].it = sw_item_of_class(cls);
            v[k].label = cls - c0 * SW_SHAPES * SW_MOTIONS;
            v[k].seed = demo_mix(salt ^ (uint64_t)k * 7919u);
            k++;
        }
    return v;
}

/* The test videos as files, a list per split, and the class features in
 * encode-text's format: OUT/videos/{seen,unseen}.csv, OUT/videos/classes_{seen,unseen}.safetensors. */
int demo_write_split(const char *out, const char *split, const DemoVideo *v, size_t n, const float *cf, int64_t D, const StringList *names,
                       size_t first_class, const DemoPlan *p, char *err, size_t cap)
{
    char dir[4300], path[4400], list[4400];
    snprintf(dir, sizeof dir, "%s/videos/%s", out, split);
    snprintf(path, sizeof path, "%s/videos", out);
    if ((mkdir(path, 0777) && errno != EEXIST) || (mkdir(dir, 0777) && errno != EEXIST)) { snprintf(err, cap, "%.1000s: %s", dir, strerror(errno)); return -1; }
    snprintf(list, sizeof list, "%s/videos/%s.csv", out, split);
    FILE *f = fopen(list, "w");
    uint8_t *pix = malloc((size_t)p->frames * (size_t)p->clip.image * (size_t)p->clip.image * 3);
    if (!f || !pix) { if (f) fclose(f); free(pix); snprintf(err, cap, "%.1000s: cannot write", list); return -1; }
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%05zu.nut", dir, i);
        sw_render_video(&v[i].it, p->frames, p->clip.image, v[i].seed, pix);
        if (video_write_rgb(path, pix, p->frames, p->clip.image, p->clip.image, 30, err, cap)) { fclose(f); free(pix); return -1; }
        fprintf(f, "%s/%05zu.nut,%d\n", split, i, v[i].label);
    }
    free(pix);
    if (fclose(f)) { snprintf(err, cap, "%.1000s: %s", list, strerror(errno)); return -1; }
    Tensor *t = tensor_new(DT_F32, 2, (int64_t[]){DEMO_CLASSES, D});
    size_t jl = 16;
    for (int c = 0; c < DEMO_CLASSES; c++) jl += strlen(names->items[first_class + (size_t)c]) + 4;
    char *json = malloc(jl);
    if (!t || !json) { tensor_free(t); free(json); snprintf(err, cap, "out of memory"); return -1; }
    memcpy(t->data, cf, t->nbytes);
    size_t at = 0;
    json[at++] = '[';
    for (int c = 0; c < DEMO_CLASSES; c++) at += (size_t)snprintf(json + at, jl - at, "%s\"%s\"", c ? ", " : "", names->items[first_class + (size_t)c]);
    snprintf(json + at, jl - at, "]");
    snprintf(path, sizeof path, "%s/videos/classes_%s.safetensors", out, split);
    NamedTensor nt = {"class_features", t};
    MetadataEntry md = {"classes", json};
    int rc = safetensors_save(path, &nt, 1, &md, 1, err, cap);
    tensor_free(t);
    free(json);
    return rc;
}
