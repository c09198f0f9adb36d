/* tensor.c — dense tensors: checked allocation, views and element access. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "ir.h"

/* The product of the non-zero dims must fit too: kernels take partial
 * products of dims (strides, outer/inner counts) even of empty tensors. */
int64_t dims_numel_checked(int rank, const int64_t *dims)
{
    if (rank < 0 || rank > IR_MAX_RANK) return -1;
    int64_t nonzero = 1;
    int empty = 0;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] == 0) empty = 1;
        else if (__builtin_mul_overflow(nonzero, dims[i], &nonzero)) return -1;
    }
    return empty ? 0 : nonzero;
}

static Tensor *tensor_header(DType t, int rank, const int64_t *dims)
{
    int64_t n = dims_numel_checked(rank, dims);
    size_t es = dtype_size(t);
    size_t bytes;
    if (n < 0 || es == 0 || __builtin_mul_overflow((size_t)n, es, &bytes)) {
        errno = EOVERFLOW;
        return NULL;
    }
    Tensor *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->dtype = t;
    x->rank = rank;
    if (rank) memcpy(x->dims, dims, sizeof(int64_t) * (size_t)rank);
    x->nbytes = bytes;
    return x;
}

Tensor *tensor_new(DType t, int rank, const int64_t *dims)
{
    Tensor *x = tensor_header(t, rank, dims);
    if (!x) return NULL;
    x->buf = malloc(sizeof *x->buf);
    /* 64-byte alignment for SIMD; at least one byte so empty tensors have a
     * pointer.  Not zeroed: every kernel writes all of its outputs. */
    size_t alloc = (x->nbytes + 63) & ~(size_t)63;
    void *p = x->buf ? aligned_alloc(64, alloc ? alloc : 64) : NULL;
    if (!p) { free(x->buf); free(x); errno = ENOMEM; return NULL; }
    x->buf->ptr = p;
    x->buf->refs = 1;
    x->data = p;
    return x;
}

Tensor *tensor_borrow(DType t, int rank, const int64_t *dims, void *data)
{
    Tensor *x = tensor_header(t, rank, dims);
    if (x) x->data = data;
    return x;
}

Tensor *tensor_view(const Tensor *src, int rank, const int64_t *dims)
{
    Tensor *x = tensor_header(src->dtype, rank, dims);
    if (!x) return NULL;
    if (x->nbytes != src->nbytes) { free(x); errno = EINVAL; return NULL; }
    x->data = src->data;
    x->buf = src->buf;
    if (x->buf) x->buf->refs++;
    return x;
}

Tensor *tensor_copy(const Tensor *src)
{
    Tensor *x = tensor_new(src->dtype, src->rank, src->dims);
    if (x && src->nbytes) memcpy(x->data, src->data, src->nbytes);
    return x;
}

Tensor *tensor_to_f32(const Tensor *src)
{
    Tensor *x = tensor_new(DT_F32, src->rank, src->dims);
    if (!x) return NULL;
    for (int64_t i = 0, n = tensor_numel(src); i < n; i++) ((float *)x->data)[i] = (float)tensor_get_f64(src, i);
    return x;
}

void tensor_free(Tensor *t)
{
    if (!t) return;
    if (t->buf && --t->buf->refs == 0) {
        free(t->buf->ptr);
        free(t->buf);
    }
    free(t);
}

int64_t tensor_numel(const Tensor *t) { return dims_numel_checked(t->rank, t->dims); }

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { /* subnormal */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
    else bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)h;
}

double tensor_get_f64(const Tensor *t, int64_t i)
{
    switch (t->dtype) {
    case DT_F32: return ((const float *)t->data)[i];
    case DT_F64: return ((const double *)t->data)[i];
    case DT_F16: return half_to_float(((const uint16_t *)t->data)[i]);
    case DT_BF16: return bf16_to_float(((const uint16_t *)t->data)[i]);
    case DT_I64: return (double)((const int64_t *)t->data)[i];
    case DT_I32: return ((const int32_t *)t->data)[i];
    case DT_I8: return ((const int8_t *)t->data)[i];
    case DT_U8: case DT_BOOL: return ((const uint8_t *)t->data)[i];
    default: return 0;
    }
}

int64_t tensor_get_i64(const Tensor *t, int64_t i)
{
    switch (t->dtype) {
    case DT_I64: return ((const int64_t *)t->data)[i];
    case DT_I32: return ((const int32_t *)t->data)[i];
    case DT_I8: return ((const int8_t *)t->data)[i];
    case DT_U8: case DT_BOOL: return ((const uint8_t *)t->data)[i];
    default: {
        double v = tensor_get_f64(t, i);
        if (v != v) return 0;
        if (v >= 9.2e18) return INT64_MAX;
        if (v <= -9.2e18) return INT64_MIN;
        return (int64_t)v;
    }
    }
}

void tensor_set_f64(Tensor *t, int64_t i, double v)
{
    switch (t->dtype) {
    case DT_F32: ((float *)t->data)[i] = (float)v; break;
    case DT_F64: ((double *)t->data)[i] = v; break;
    case DT_F16: ((uint16_t *)t->data)[i] = float_to_half((float)v); break;
    case DT_BF16: ((uint16_t *)t->data)[i] = float_to_bf16((float)v); break;
    case DT_I64: ((int64_t *)t->data)[i] = (v != v) ? 0 : (v >= 9.2e18 ? INT64_MAX : v <= -9.2e18 ? INT64_MIN : (int64_t)v); break;
    case DT_I32: ((int32_t *)t->data)[i] = (v != v || v > 2147483647.0 || v < -2147483648.0) ? 0 : (int32_t)v; break;
    case DT_I8: ((int8_t *)t->data)[i] = (int8_t)(int64_t)((v != v) ? 0 : v); break;
    case DT_U8: ((uint8_t *)t->data)[i] = (uint8_t)(int64_t)((v != v) ? 0 : v); break;
    case DT_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    default: break;
    }
}
