/* comm.h — how the processes of one job talk: all-reduce, broadcast,
 * all-gather and barrier over a communicator, whatever carries them.  Three
 * implementations sit behind one table (comm_ops.h): a single process (the
 * default; no MPI needed at run time), MPI (Open MPI, loaded as a plugin
 * only when a launcher started several processes), and NCCL for device
 * buffers (comm_nccl.c; its unique id broadcast over the host communicator).  Every collective gives up
 * after the communicator's timeout with a message saying which rank waited
 * for what, so that a dead or hung peer stops the job instead of hanging it. */
#ifndef VCLIP_COMM_H
#define VCLIP_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "comm_ops.h"

typedef enum { COMM_AUTO, COMM_SINGLE, COMM_MPI } CommKind;

/* What the launcher's environment says (Open MPI's OMPI_COMM_WORLD_*,
 * MPICH's PMI_*, PMIx, Slurm): 1 with rank, size and local rank when one
 * started this process, else 0 (and a world of one). */
typedef struct { int rank, size, local_rank; const char *source; } LaunchInfo;
int launch_info(LaunchInfo *li);

typedef struct Comm Comm;

/* COMM_AUTO: MPI when the launcher started more than one process, else a
 * single process.  timeout_s bounds every collective (<= 0: 300 s).  NULL
 * with the reason (a missing MPI plugin names the file it looked for). */
Comm *comm_open(CommKind kind, double timeout_s, char *err, size_t cap);
/* The NCCL communicator over the same ranks, for buffers in device memory
 * (the CUDA backend's; this rank's device, which its local rank chose): rank
 * 0 makes NCCL's unique id and host carries it to the others.  Collectives
 * take device addresses cast to pointers; a mean is NCCL's average.  NULL
 * with the reason (no NCCL: "NCCL not found ..."). */
Comm *comm_open_nccl(Comm *host, char *err, size_t cap);
/* 1 when c's buffers are device addresses (NCCL). */
int comm_is_device(const Comm *c);

/* Leaves the job.  failed: this rank stops on an error, so the job is
 * aborted (MPI_Abort) rather than left waiting at its next collective. */
void comm_close(Comm *c, int failed);

int comm_rank(const Comm *c);
int comm_size(const Comm *c);
int comm_local_rank(const Comm *c);
const char *comm_name(const Comm *c);   /* "single", "mpi" */

/* In place over every rank: the sum, or the mean (the sum divided by the
 * world size, in the buffer's type).  0, or -1 with a message. */
int comm_allreduce(Comm *c, void *buf, size_t n, CommType t, int mean, char *err, size_t cap);
/* The same over n buffers (bufs[i] of counts[i] elements), as one
 * collective where the implementation can group them (NCCL).  */
int comm_allreduce_many(Comm *c, void *const *bufs, const size_t *counts, int n, CommType t, int mean, char *err, size_t cap);
/* root's bytes to every rank. */
int comm_broadcast(Comm *c, void *buf, size_t bytes, int root, char *err, size_t cap);
/* Every rank's `bytes` into recv[size * bytes], in rank order. */
int comm_allgather(Comm *c, const void *send, size_t bytes, void *recv, char *err, size_t cap);
/* Rank-varying lengths: counts[r] bytes from rank r, placed one after the other. */
int comm_allgatherv(Comm *c, const void *send, size_t bytes, void *recv, const size_t *counts, char *err, size_t cap);
int comm_barrier(Comm *c, char *err, size_t cap);

/* A sum all-reduce that runs while the caller computes: start it, drive it
 * with comm_test between pieces of work, finish it with comm_wait (which
 * applies the timeout).  Started on every rank in the same order. */
typedef struct CommRequest CommRequest;
int comm_iallreduce(Comm *c, void *buf, size_t n, CommType t, CommRequest **req, char *err, size_t cap);
int comm_test(Comm *c, CommRequest *req, int *done, char *err, size_t cap);
int comm_wait(Comm *c, CommRequest *req, char *err, size_t cap); /* frees req */

/* Seconds this rank spent blocked in collectives since it opened (waiting
 * for peers and moving bytes), for the benchmarks' breakdown. */
double comm_wait_seconds(const Comm *c);

#endif
