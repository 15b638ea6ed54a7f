/*
 * Spark Segment GEMM: the native library's public C API.
 *
 * Computes, for ragged segments of a packed row-major input x (rows x d_in),
 *   y[indptr[i] : indptr[i+1], :] = x[indptr[i] : indptr[i+1], :] . W[w(i)]
 * with w(i) = weight_indices[i] when weight indices are given, else i; the same semantics as
 * FlashInfer's SegmentGEMMWrapper.run(x, weights, batch_size, weight_column_major, out,
 * seg_lens, seg_indptr, weight_indices).
 *
 * Conventions:
 *  - Every pointer in sgemm_run_args is a device pointer; nothing is read on the host.
 *  - Every call runs on the caller's stream. The library is built with
 *    `--default-stream per-thread`, so stream 0 means the calling thread's default stream
 *    (the stream cuDF and the RAPIDS Accelerator use), never the legacy stream.
 *  - Every function returns an sgemm_status; on failure sgemm_last_error() returns a message for
 *    the calling thread. Nothing prints, nothing exits.
 *  - Errors found in device-resident arguments (a negative segment length, an indptr that is
 *    not monotone or does not end at x_rows, a weight index out of range) are detected on the
 *    device without a host synchronisation: the faulty call writes nothing to y, records the
 *    first error in the int workspace, and sgemm_check(handle, stream) reports it (that one
 *    call synchronises the stream).
 */
#ifndef SEGMENT_GEMM_H
#define SEGMENT_GEMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SGEMM_EXPORT __attribute__((visibility("default")))

typedef enum sgemm_status {
  SGEMM_OK = 0,
  SGEMM_INVALID_ARGUMENT = 1,   /* bad shape, null pointer, dtype, or segment data */
  SGEMM_WORKSPACE_TOO_SMALL = 2,
  SGEMM_UNSUPPORTED = 3,        /* backend or device cannot run this call */
  SGEMM_NO_DEVICE = 4,          /* no CUDA driver or no CUDA device */
  SGEMM_CUDA_ERROR = 5,         /* a CUDA runtime call failed */
  SGEMM_INTERNAL_ERROR = 6
} sgemm_status;

/* Element types of x, weights and y (all three share one). Accumulation is always fp32. */
typedef enum sgemm_dtype {
  SGEMM_FLOAT32 = 0,
  SGEMM_FLOAT16 = 1,
  SGEMM_BFLOAT16 = 2
} sgemm_dtype;

/* Which kernel family runs a call. AUTO picks the best one the device supports. */
typedef enum sgemm_backend {
  SGEMM_BACKEND_AUTO = 0,
  SGEMM_BACKEND_PORTABLE = 1    /* SIMT kernel: any dtype, layout, size and architecture */
} sgemm_backend;

typedef struct sgemm_handle sgemm_handle;

typedef struct sgemm_run_args {
  sgemm_dtype dtype;
  const void* x;                 /* (x_rows, d_in) row-major */
  int64_t x_rows;
  int64_t d_in;
  int64_t d_out;
  const void* weights;           /* (num_weights, d_in, d_out) if !weight_column_major,
                                    (num_weights, d_out, d_in) if weight_column_major */
  int64_t num_weights;
  int weight_column_major;
  void* y;                       /* (x_rows, d_out) row-major; overwritten, never accumulated */
  int64_t batch_size;            /* number of segments */
  const int64_t* seg_lens;       /* (batch_size,) or NULL */
  const int64_t* seg_indptr;     /* (batch_size + 1,) or NULL; wins over seg_lens */
  const int64_t* weight_indices; /* (batch_size,) or NULL: segment i uses weight i */
} sgemm_run_args;

typedef struct sgemm_device_info {
  char name[256];
  int major;                     /* compute capability */
  int minor;
  int multiprocessor_count;
  size_t total_memory_bytes;
  int driver_version;            /* e.g. 13000 for CUDA 13.0 */
  int runtime_version;
} sgemm_device_info;

/* Message of the last failed call on this thread ("" if none). Valid until the next call. */
SGEMM_EXPORT const char* sgemm_last_error(void);

/* Library version, e.g. "0.1.0". */
SGEMM_EXPORT const char* sgemm_version(void);

/* Number of CUDA devices. No driver or no device: SGEMM_NO_DEVICE with the reason. */
SGEMM_EXPORT sgemm_status sgemm_device_count(int* count);

SGEMM_EXPORT sgemm_status sgemm_device_query(int device, sgemm_device_info* info);

/* Minimum workspace sizes, in bytes, for a call with batch_size segments. */
SGEMM_EXPORT sgemm_status sgemm_workspace_size(int64_t batch_size, size_t* float_workspace_bytes,
                                               size_t* int_workspace_bytes);

/*
 * Creates a handle bound to the current device. The workspaces are device memory the caller
 * owns and keeps alive while the handle uses them (FlashInfer advises 128 MiB of float
 * workspace; 8 MiB of int workspace holds the state of about 500,000 segments). A handle and its
 * workspace serve one stream at a time: use one handle per thread or stream.
 */
SGEMM_EXPORT sgemm_status sgemm_create(sgemm_handle** handle, sgemm_backend backend,
                                       void* float_workspace, size_t float_workspace_bytes,
                                       void* int_workspace, size_t int_workspace_bytes);

/* Swaps the workspaces (FlashInfer's reset_workspace_buffer). */
SGEMM_EXPORT sgemm_status sgemm_reset_workspace(sgemm_handle* handle, void* float_workspace,
                                                size_t float_workspace_bytes, void* int_workspace,
                                                size_t int_workspace_bytes);

SGEMM_EXPORT sgemm_status sgemm_destroy(sgemm_handle* handle);

/* Enqueues one segment GEMM on stream; returns without synchronising. */
SGEMM_EXPORT sgemm_status sgemm_run(sgemm_handle* handle, const sgemm_run_args* args,
                                    void* stream);

/*
 * Waits for stream and reports the first error the device found in the segment data of the
 * runs enqueued since the last check (and clears it), or a CUDA error raised by them.
 */
SGEMM_EXPORT sgemm_status sgemm_check(sgemm_handle* handle, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* SEGMENT_GEMM_H */
