/* fuzz_lists.c — libFuzzer target: bytes as the text lists users hand us:
 * a class list (JSON object or array, or one name per line), a template
 * list, a captions JSONL file, and a dataset CSV (`path,label` lines).
 * Each either refuses with a message or returns well-formed entries.
 * Build: make fuzz; runs: docs/fuzzing.md. */
#include <stdint.h>
#include <string.h>
#include "fuzz_file.h"
#include "../../models/prompts.h"
#include "../../runtime/data/dataset.h"
#include "../../runtime/eval/text_features.h"

static void check_list(const StringList *l, int rc)
{
    for (size_t i = 0; rc == 0 && i < l->n; i++)
        if (!l->items[i]) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    const char *path = fuzz_file(data, size, ".txt");
    StringList a = {0}, b = {0};
    int rc = prompts_load_classes(path, &a, err, sizeof err);
    check_list(&a, rc);
    for (size_t i = 0; rc == 0 && i < a.n; i++) { /* what eval does with each name */
        char *n = prompts_normalize_class(a.items[i]), *p = n ? prompts_fill("a video of {}.", n) : NULL;
        free(n);
        free(p);
    }
    string_list_free(&a);
    rc = prompts_load_templates(path, &a, err, sizeof err);
    check_list(&a, rc);
    string_list_free(&a);
    rc = load_captions(path, &a, &b, err, sizeof err);
    if (rc == 0 && a.n != b.n) __builtin_trap();
    check_list(&a, rc);
    check_list(&b, rc);
    string_list_free(&a);
    string_list_free(&b);
    Dataset ds;
    if (dataset_load_csv(path, "/nonexistent-root", &ds, err, sizeof err) == 0) {
        for (size_t i = 0; i < ds.n; i++)
            if (!ds.items[i].path || ds.items[i].label < 0) __builtin_trap();
        dataset_free(&ds);
    }
    return 0;
}
