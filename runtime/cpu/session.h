/* session.h — a whole graph on the CPU.  A Session binds the inputs
 * (checking dtypes and dims, symbolic dims consistently), runs the nodes in
 * order with exec_node (exec_node.h), and frees each intermediate after its
 * last use; later runs with the same input shapes use a planned arena. */
#ifndef VCLIP_SESSION_H
#define VCLIP_SESSION_H

#include "exec_node.h"

typedef struct Session Session;
Session *session_new(Graph *g, const ExecOptions *opt, char *err, size_t cap);
void session_free(Session *s);
/* inputs[i] matches g->inputs[i]; outputs[i] receives g->outputs[i] (caller frees). */
int session_run(Session *s, Tensor *const *inputs, Tensor **outputs, char *err, size_t cap);
/* Called during each later run after every node: once for each graph
 * output the node completed (output: its index, value: the final tensor,
 * valid until the run ends), or once with -1 and NULL when it completed
 * none, so that a caller can ship finished outputs (gradients to other
 * ranks) and drive that traffic while the rest of the graph runs.  fn NULL:
 * none. */
void session_observe(Session *s, void (*fn)(void *ctx, int output, const Tensor *value), void *ctx);
/* Peak bytes of live intermediates in the last run. */
size_t session_peak_bytes(const Session *s);
/* The memory plan's arena (0 before the first run, or with VCLIP_NO_ARENA=1):
 * after a run, intermediates of later runs with the same input shapes live at
 * planned offsets in one buffer of this size (passes/plan_memory.c). */
size_t session_arena_bytes(const Session *s);

#endif
