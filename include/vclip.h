/* vclip.h — the vclip C library (libvclip.so): compile and run CLIP and
 * VCLIP models, read videos into the frames a model sees, tokenize text,
 * make zero-shot class features and classify videos.  This header is the
 * whole API; every other symbol of the library is hidden.
 *
 * Conventions:
 * - Handles are opaque; each has its free function (NULL is accepted).
 * - Functions return 0 (or a handle) on success and -1 (or NULL) on error;
 *   vclip_last_error() then says what went wrong, naming the file, node or
 *   argument (per thread, valid until this thread's next call).
 * - Tensors handed in are the caller's; tensors handed out are allocated by
 *   the library and released with vclip_tensor_free().
 * - Calls on one handle must not overlap; different handles may be used
 *   from different threads.
 *
 * Build against it with `pkg-config --cflags --libs vclip` after
 * `make install PREFIX=...` (examples/classify.c does). */
#ifndef VCLIP_H
#define VCLIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VCLIP_BUILDING_LIBRARY)
#define VCLIP_API __attribute__((visibility("default")))
#else
#define VCLIP_API
#endif

#define VCLIP_API_VERSION 1

/* The library's version ("0.x.y") and the last error on this thread. */
VCLIP_API const char *vclip_version(void);
VCLIP_API const char *vclip_last_error(void);

/* ---- tensors ------------------------------------------------------------ */

typedef enum { VCLIP_FLOAT32 = 1, VCLIP_INT64 = 7 } vclip_dtype; /* ONNX's codes */
#define VCLIP_MAX_RANK 8

typedef struct {
    vclip_dtype dtype;
    int rank;
    int64_t dims[VCLIP_MAX_RANK];
    void *data;        /* row-major, dense */
} vclip_tensor;

/* Frees data of a tensor the library handed out, and zeroes it. */
VCLIP_API void vclip_tensor_free(vclip_tensor *t);

/* ---- models ------------------------------------------------------------- */

typedef struct {
    const char *target;     /* "cpu" (default) or "cuda" */
    const char *precision;  /* "auto" (default: bf16 where the CPU multiplies bf16 natively, else
                               fp32), "fp32" (exact work), "bf16", "fp16" (cuda) */
    int threads;            /* CPU threads; 0: every core */
    int frames;             /* > 0: an image encoder becomes VCLIP's video encoder over this many frames (default 0) */
    int window;             /* with frames: attend over frames t-w..t+w (default 1 when frames > 0) */
} vclip_options;

typedef struct vclip_model vclip_model;

/* An ONNX file (an export of OpenAI, open_clip or Hugging Face CLIP, or a
 * model vclipc wrote) compiled for opt (NULL: the defaults). */
VCLIP_API vclip_model *vclip_model_load(const char *onnx_path, const vclip_options *opt);
VCLIP_API void vclip_model_free(vclip_model *m);
/* Its inputs and outputs: how many, and each one's name (valid while m lives). */
VCLIP_API int vclip_model_num_inputs(const vclip_model *m);
VCLIP_API int vclip_model_num_outputs(const vclip_model *m);
VCLIP_API const char *vclip_model_input_name(const vclip_model *m, int i);
VCLIP_API const char *vclip_model_output_name(const vclip_model *m, int i);
/* inputs[i] for input i (all of them); outputs[i] receives output i (n_out
 * of them, from the first). */
VCLIP_API int vclip_model_run(vclip_model *m, const vclip_tensor *inputs, int n_in, vclip_tensor *outputs, int n_out);

/* ---- videos and text ---------------------------------------------------- */

/* A video's test views as a model sees them: [views, frames, 3, size, size]
 * float32, decoded with FFmpeg, sampled (stride 16 at 30 fps), resized,
 * centre-cropped and normalized with CLIP's mean and std. */
VCLIP_API int vclip_load_video(const char *path, int frames, int size, int views, vclip_tensor *out);

/* CLIP's BPE tokens: [n, 77] int64 (start and end of text, zero padded,
 * truncated as open_clip does). */
VCLIP_API int vclip_tokenize(const char *const *texts, int n, vclip_tensor *out);

/* ---- zero-shot classification ------------------------------------------ */

typedef struct vclip_classifier vclip_classifier;

/* A video encoder and a text encoder.  visual: an image encoder (made
 * temporal: opt->frames, default 8, opt->window, default 1), a VCLIP
 * encoder, or an image encoder with weights (vclip-run train's
 * weights.safetensors; NULL: none). */
VCLIP_API vclip_classifier *vclip_classifier_open(const char *visual, const char *weights, const char *text_model,
                                                  const vclip_options *opt);
VCLIP_API void vclip_classifier_free(vclip_classifier *c);
/* Class features of names: [n, D] float32, unit rows, from the 28-template
 * prompt ensemble.  An empty list, an empty name or a name given twice is
 * an error. */
VCLIP_API int vclip_class_features(vclip_classifier *c, const char *const *names, int n, vclip_tensor *out);
/* The classes later calls of vclip_classify score against. */
VCLIP_API int vclip_classifier_set_classes(vclip_classifier *c, const char *const *names, int n);
/* probs[n]: the video's class probabilities (3 test views, logits averaged
 * over frames and views, softmax), in the order of the classes set.  A
 * video that cannot be read is an error saying why. */
VCLIP_API int vclip_classify(vclip_classifier *c, const char *video, float *probs);

#ifdef __cplusplus
}
#endif

#endif
