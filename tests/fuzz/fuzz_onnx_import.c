/* fuzz_onnx_import.c — libFuzzer target: bytes -> importer -> verifier ->
 * the default passes (constant folding executes reference kernels on the
 * model's own constants) -> exporter.  Any crash, leak or sanitizer report
 * is a bug.  Build: make fuzz; runs: see docs/fuzzing.md. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "../../ir/verify.h"
#include "../../onnx/onnx_io.h"
#include "../../passes/passes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    Graph *g = onnx_load_bytes(data, size, "fuzz-input", NULL, err, sizeof err);
    if (!g) return 0;
    if (graph_verify(g, err, sizeof err) != 0) {
        fprintf(stderr, "imported graph fails verification: %s\n", err);
        __builtin_trap();
    }
    PassOptions po = {.verify = 1};
    if (run_passes(g, default_pipeline, &po, err, sizeof err) == 0) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/vclip-fuzz-%d.onnx", (int)getpid());
        OnnxSaveOptions so = {.external_data = 0};
        if (onnx_save(g, path, &so, err, sizeof err) == 0) unlink(path);
    } else if (strstr(err, "verifier failed")) {
        fprintf(stderr, "%s\n", err);
        __builtin_trap();
    }
    graph_free(g);
    return 0;
}
