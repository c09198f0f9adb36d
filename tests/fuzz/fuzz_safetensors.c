/* fuzz_safetensors.c — libFuzzer target: bytes as a safetensors file (class
 * and caption features, weights) and as a training checkpoint.  Every name
 * in the header is loaded, with a metadata value; then the checkpoint loader
 * restores a small model, its AdamW moments and SWA average from it, and
 * applies its weights to a graph.  Anything but a clean refusal or a
 * consistent load (a crash, a leak, a sanitizer report, an allocation the
 * file cannot back) is a bug.  Build: make fuzz; runs: docs/fuzzing.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_file.h"
#include "../../ir/builder.h"
#include "../../runtime/safetensors.h"
#include "../../runtime/train/checkpoint.h"

static void load_every_tensor(const char *path)
{
    char err[1024], **names = NULL;
    int n = 0;
    if (safetensors_names(path, &names, &n, err, sizeof err) == 0)
        for (int i = 0; i < n; i++) {
            char *meta = NULL;
            Tensor *t = safetensors_load(path, names[i], "classes", &meta, err, sizeof err);
            if (t && (size_t)tensor_numel(t) * dtype_size(t->dtype) != t->nbytes) __builtin_trap();
            tensor_free(t);
            free(meta);
            Tensor *c = checkpoint_tensor(path, names[i], err, sizeof err);
            tensor_free(c);
        }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static void restore_checkpoint(const char *path)
{
    char err[1024];
    const char *names[2] = {"w", "b"};
    Tensor *data[2] = {tensor_new(DT_F32, 2, (int64_t[]){3, 4}), tensor_new(DT_F32, 1, (int64_t[]){4})};
    Tensor *swa[2] = {tensor_new(DT_F32, 2, (int64_t[]){3, 4}), tensor_new(DT_F32, 1, (int64_t[]){4})};
    AdamW opt;
    TrainState st = {0};
    if (data[0] && data[1] && swa[0] && swa[1] && adamw_init(&opt, &ADAMW_DEFAULTS, data, names, 2) == 0) {
        CheckpointView v = {2, names, data, &opt, swa, NULL, NULL};
        checkpoint_load(path, &v, &opt, &st, err, sizeof err);
        adamw_free(&opt);
    }
    for (int i = 0; i < 2; i++) { tensor_free(data[i]); tensor_free(swa[i]); }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size, ".safetensors");
    load_every_tensor(path);
    restore_checkpoint(path);
    return 0;
}
