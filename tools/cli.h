/* cli.h — what the command-line tools share: error printing that escapes
 * control bytes from untrusted text, integer parsing, finding the
 * data files installed next to the binaries. */
#ifndef VCLIP_CLI_H
#define VCLIP_CLI_H

#include <stddef.h>
#include "../ir/base.h"
#include "../runtime/model.h"
#include "../runtime/comm/comm.h"

/* "TOOL: PREFIX: MSG\n" on stderr with control bytes shown as \xNN. */
void cli_error(const char *tool, const char *prefix, const char *msg);
int cli_parse_int(const char *s, int lo, int hi, int *out);
/* "TOOL: MSG" on stderr; returns 2, the exit status of a usage error. */
int cli_usage_error(const char *tool, const char *msg);

/* --target and --precision, which every command that runs a model takes:
 * put CLI_COMPILE_OPTIONS in the getopt_long table, pass the two codes to
 * cli_compile_arg, and print CLI_COMPILE_HELP in --help. */
enum { CLI_OPT_TARGET = 0x100, CLI_OPT_PRECISION };
#define CLI_COMPILE_OPTIONS {"target", 1, 0, CLI_OPT_TARGET}, {"precision", 1, 0, CLI_OPT_PRECISION}
#define CLI_COMPILE_HELP                                                                                  \
    "  --target cpu|cuda   where the model runs (default cpu; cuda: device 0, a clear error without one)\n" \
    "  --precision auto|fp32|bf16|fp16   GEMM inputs (on the CPU also attention's, except\n"     \
    "                      in training), sums in f32.  auto (the default): bf16 where the CPU\n"  \
    "                      multiplies bf16 natively (AVX512-BF16, AMX), else fp32; fp32 on cuda\n" \
    "                      for now.  fp32 for exact work; fp16 is for cuda\n"
/* Applies one of them to co: 0, or 2 (the usage-error status) with the
 * message printed as "TOOL: ...". */
int cli_compile_arg(const char *tool, int code, const char *arg, CompileOptions *co);

/* The job's ranks, for commands that mpirun may start several times (one
 * process without a launcher; comm.h).  name receives the tool's name for
 * messages ("vclip-run eval [rank 1 of 2]"), ranks other than 0 print
 * nothing on stdout (rank 0 reports), and each rank takes the device of
 * target numbered by its local rank (one GPU per rank on a machine).  NULL
 * after printing why.  Close with comm_close(c, failed): a failing rank
 * aborts the job, so none waits. */
Comm *cli_comm_open(const char *tool, double timeout_s, Target target, char *name, size_t cap);
#define CLI_COMM_TIMEOUT_HELP \
    "  --comm-timeout S    under mpirun: a rank that waits S seconds for the others stops the job (300)\n"

#endif
