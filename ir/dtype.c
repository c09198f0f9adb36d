/* dtype.c — element types: sizes, names and the mapping to ONNX's enum. */
#include "ir.h"

static const struct { const char *name; size_t size; int32_t onnx; } dtypes[DT_COUNT] = {
    [DT_UNDEF] = {"undef", 0, 0},
    [DT_F32] = {"f32", 4, 1},   [DT_F16] = {"f16", 2, 10}, [DT_BF16] = {"bf16", 2, 16},
    [DT_F64] = {"f64", 8, 11},  [DT_I64] = {"i64", 8, 7},  [DT_I32] = {"i32", 4, 6},
    [DT_I8] = {"i8", 1, 3},     [DT_U8] = {"u8", 1, 2},    [DT_BOOL] = {"bool", 1, 9},
};

size_t dtype_size(DType t) { return (t > DT_UNDEF && t < DT_COUNT) ? dtypes[t].size : 0; }
const char *dtype_name(DType t) { return (t >= DT_UNDEF && t < DT_COUNT) ? dtypes[t].name : "?"; }
int dtype_is_float(DType t) { return t == DT_F32 || t == DT_F16 || t == DT_BF16 || t == DT_F64; }
int32_t dtype_to_onnx(DType t) { return (t >= DT_UNDEF && t < DT_COUNT) ? dtypes[t].onnx : 0; }

DType dtype_from_onnx(int32_t onnx_type)
{
    for (int t = DT_UNDEF + 1; t < DT_COUNT; t++)
        if (dtypes[t].onnx == onnx_type) return (DType)t;
    return DT_UNDEF;
}
