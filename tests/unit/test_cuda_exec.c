/* test_cuda_exec.c — the CUDA executor's logic on an emulated device
 * (cuda_emulator.h), where no GPU is: real CLIP exports (OpenAI and Hugging
 * Face, visual and text) and a VCLIP temporal graph run through
 * cuda_session_run four times each — the eager first run, the planned one,
 * the one recorded as a CUDA graph, a replay — and every answer must equal
 * the CPU session's.  Checked along the way: the heavy nodes ran on the
 * "device", the arena was planned, graphs were recorded and replayed where
 * the inputs' values stay on the device (visual) and not where the host
 * reads them (text: the token lookup), new input shapes re-plan, and every
 * device allocation is returned when the session ends. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "compare.h"
#include "cuda_emulator.h"
#include "../../onnx/onnx_io.h"
#include "../../passes/passes.h"
#include "../../runtime/cuda/cuda_exec.h"
#include "../../runtime/cpu/session.h"
#include "../../runtime/npy.h"

static Graph *compiled(const char *fixture, int frames)
{
    char path[1024], err[1024];
    snprintf(path, sizeof path, VCLIP_DATA_DIR "/tests/fixtures/%s/model.onnx", fixture);
    Graph *g = onnx_load(path, err, sizeof err);
    CHECK(g != NULL, "%s: %s", path, err);
    if (!g) return NULL;
    PassOptions po = {0};
    TemporalOptions to = {frames, 1, 0};
    if (run_passes(g, default_pipeline, &po, err, sizeof err) || (frames && temporal_attention(g, &to, err, sizeof err) < 0) ||
        run_passes(g, kernel_pipeline, &po, err, sizeof err)) {
        CHECK(0, "%s: %s", fixture, err);
        graph_free(g);
        return NULL;
    }
    return g;
}

/* The same batch again and again, then a smaller batch (a new plan). */
static void check_model(const char *fixture, const char *input_file, int frames, int expect_graphs)
{
    char err[1024], path[1024];
    Graph *g = compiled(fixture, frames);
    if (!g) return;
    snprintf(path, sizeof path, VCLIP_DATA_DIR "/tests/fixtures/%s", input_file);
    Tensor *in = npy_load(path, err, sizeof err);
    CHECK(in != NULL && g->n_inputs == 1 && g->n_outputs == 1, "%s: %s", path, in ? "one input and one output expected" : err);
    if (!in || g->n_inputs != 1 || g->n_outputs != 1) { tensor_free(in); graph_free(g); return; }
    Session *cpu = session_new(g, &(ExecOptions){.threads = 2}, err, sizeof err);
    CudaSession *cs = cuda_session_new(g, &(CudaOptions){0}, err, sizeof err);
    CHECK(cpu && cs, "%s: sessions: %s", fixture, err);
    long allocs_before = emu.live_allocs, replays_before = emu.replays;
    for (int run = 0; cpu && cs && run < 5; run++) {
        /* new pixel values every run (a replay must compute, not return the last answer);
         * the last run a smaller batch: a new plan, eager again */
        int64_t d[IR_MAX_RANK];
        memcpy(d, in->dims, sizeof d);
        if (run == 4) d[0] = 1;
        Tensor *x = tensor_new(in->dtype, in->rank, d);
        memcpy(x->data, in->data, x->nbytes);
        if (x->dtype == DT_F32)
            for (int64_t i = 0; i < tensor_numel(x); i++) ((float *)x->data)[i] *= 1.0f + 0.25f * (float)run;
        Tensor *want = NULL, *got = NULL;
        int rc = session_run(cpu, &x, &want, err, sizeof err);
        CHECK(rc == 0, "%s: cpu: %s", fixture, err);
        rc = cuda_session_run(cs, &x, &got, err, sizeof err);
        CHECK(rc == 0, "%s run %d: cuda: %s", fixture, run, err);
        double diff = rel_diff(got, want);
        CHECK(diff < 1e-4, "%s run %d: emulated device vs CPU: rel diff %g", fixture, run, diff);
        CudaStats st;
        cuda_session_stats(cs, &st);
        CHECK(st.device_nodes > st.host_nodes, "%s run %d: %d nodes on the device, %d on the host", fixture, run, st.device_nodes, st.host_nodes);
        if (run == 0) CHECK(st.arena_bytes > 0 && st.weight_bytes > 0, "%s: arena %zu, weights %zu", fixture, st.arena_bytes, st.weight_bytes);
        if (run == 3) {
            long replays = emu.replays - replays_before;
            if (expect_graphs) CHECK(replays == 2, "%s: %ld CUDA graph launches in runs 3 and 4, want 2 (%s)", fixture, replays, st.graph_note);
            else CHECK(replays == 0 && st.graph_note[0], "%s: recorded a CUDA graph though the host reads the inputs", fixture);
        }
        tensor_free(want);
        tensor_free(got);
        tensor_free(x);
    }
    cuda_session_free(cs);
    session_free(cpu);
    cublaslt_release(); /* the GEMMs' workspace lives for the process */
    CHECK(emu.live_allocs == allocs_before, "%s: %ld device buffers left after the session", fixture, emu.live_allocs - allocs_before);
    tensor_free(in);
    graph_free(g);
}

/* Mistakes are reported, not crashed on: a wrong input dtype. */
static void check_bad_input(void)
{
    char err[1024];
    Graph *g = compiled("openai_visual_op17", 0);
    if (!g) return;
    CudaSession *cs = cuda_session_new(g, NULL, err, sizeof err);
    int64_t d[4] = {1, 3, 32, 32};
    Tensor *x = tensor_new(DT_F64, 4, d), *out = NULL;
    CHECK(cs && cuda_session_run(cs, &x, &out, err, sizeof err) != 0 && strstr(err, "dtype"), "a f64 image is refused: %s", err);
    tensor_free(x);
    cuda_session_free(cs);
    graph_free(g);
}

int main(void)
{
    emulate_cuda();
    exec_set_threads(2);
    long start = emu.live_allocs;
    check_model("openai_visual_op17", "openai_visual_op17/input_image.npy", 0, 1);
    check_model("hf_visual_op17", "hf_visual_op17/input_pixel_values.npy", 0, 1);
    check_model("openai_text_op17", "openai_text_op17/input_text.npy", 0, 0);
    check_model("hf_text_op17", "hf_text_op17/input_input_ids.npy", 0, 0);
    check_model("openai_visual_op17", "vclip_temporal/video.npy", 8, 1);
    check_bad_input();
    CHECK(emu.live_allocs == start, "%ld emulated device buffers never freed", emu.live_allocs - start);
    printf("emulated device: %ld kernel launches, %ld graph replays\n", emu.launches, emu.replays);
    return TEST_SUMMARY();
}
