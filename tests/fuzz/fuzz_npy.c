/* fuzz_npy.c — libFuzzer target: bytes as a .npy file (vclipc run's inputs).
 * A load either refuses with a message or returns a tensor whose bytes match
 * its dtype and shape.  Build: make fuzz; runs: docs/fuzzing.md. */
#include <stdint.h>
#include "fuzz_file.h"
#include "../../runtime/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    err[0] = 0;
    Tensor *t = npy_load(fuzz_file(data, size, ".npy"), err, sizeof err);
    if (t && (size_t)tensor_numel(t) * dtype_size(t->dtype) != t->nbytes) __builtin_trap();
    if (!t && !err[0]) __builtin_trap(); /* a refusal says why */
    tensor_free(t);
    return 0;
}
