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
 *    the calling thread. Nothing prints, nothing exits, and no C++ exception crosses this API.
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
  SGEMM_CUDA_ERROR = 5,         /* a CUDA runtime call failed; the context is still usable */
  SGEMM_INTERNAL_ERROR = 6,     /* a bug, or a C++ exception inside the library (its message,
                                   e.g. "out of host memory" for std::bad_alloc) */
  SGEMM_CUDA_FATAL = 7          /* a sticky CUDA error (illegal address, launch failure, ECC,
                                   ...): the process's CUDA context is unusable and every later
                                   CUDA call fails; only a new process can use the GPU again
                                   (a Spark executor must exit rather than retry the task) */
} sgemm_status;

/*
 * Element types of x, weights and y (all three share one, except fp8 weights: weight_scales
 * below). Accumulation is always fp32.
 * float16 and bfloat16 run on the tensor cores (CUTLASS) when d_in and d_out are multiples of 8
 * and x, weights and y are 16-byte aligned; other sizes run on the portable kernel.
 * float32 is computed in full fp32 on the CUDA cores (portable kernel), never silently in TF32:
 * callers who want tensor cores convert to float16/bfloat16 on the device first (the Spark UDF
 * does, by its compute-dtype setting).
 */
typedef enum sgemm_dtype {
  SGEMM_FLOAT32 = 0,
  SGEMM_FLOAT16 = 1,
  SGEMM_BFLOAT16 = 2,
  SGEMM_FLOAT8_E4M3 = 3,   /* fp8 operands of sgemm_bmm_fp8 (OCP e4m3fn: max 448, no infinity) */
  SGEMM_FLOAT8_E5M2 = 4    /* fp8 operands of sgemm_bmm_fp8 (max 57344) */
} sgemm_dtype;

/*
 * Which kernel family runs a call.
 *  AUTO      a small call (1 to 1024 segments, d_in <= 512, d_out <= 16384, and
 *            x_rows * d_in * d_out <= 2^22 multiply-adds) runs on the fused small-call kernel:
 *            one launch that checks the segments and computes them on the CUDA cores in fp32
 *            (any dtype, size, alignment and architecture; its plan reads "small ...").
 *            Otherwise compute capability 9.0: SM90 for the calls it supports, else PORTABLE;
 *            8.x: SM80 likewise; anything else: PORTABLE.
 *  PORTABLE  SIMT kernel: any dtype, layout, size and architecture.
 *  SM90      CUTLASS 3.x pointer-array grouped GEMM (TMA, wgmma, warp-specialised); needs a
 *            compute capability 9.0 device (H100/H200), float16/bfloat16 and aligned sizes.
 *  SM80      CUTLASS 2.x grouped GEMM (mma.sync, cp.async); needs compute capability 8.x or 9.0,
 *            float16/bfloat16 and aligned sizes.
 * A forced backend (PORTABLE, SM90, SM80) never falls back: a call it cannot run fails with
 * SGEMM_UNSUPPORTED and says why; sgemm_create fails the same way on a device it cannot use.
 */
typedef enum sgemm_backend {
  SGEMM_BACKEND_AUTO = 0,
  SGEMM_BACKEND_PORTABLE = 1,
  SGEMM_BACKEND_SM80 = 2,
  SGEMM_BACKEND_SM90 = 3
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
  /*
   * NULL: weights have dtype. Else the weights are fp8 e4m3 (one byte each), column-major
   * (weight_column_major = 1: (num_weights, d_out, d_in), the K-major layout fp8 tensor cores
   * read), and weight w stands for weights[w] * weight_scales[w]: a device array of num_weights
   * fp32 dequantisation scales. x (float16 or bfloat16) is then quantised to e4m3 on the device
   * with one scale per call (amax of its finite values / 448; a NaN stays NaN, an infinity
   * saturates), the product runs on the sm_90a fp8 tensor cores (fp32 accumulation without
   * periodic promotion, as FlashInfer's fp8 segment GEMM) and y keeps dtype. Needs the SM90 or
   * AUTO backend on a compute capability 9.0 device, d_in % 16 == 0 and d_out % 8 == 0.
   */
  const float* weight_scales;
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

/*
 * The cudaError_t of the last failed call on this thread when it failed on a CUDA error
 * (SGEMM_CUDA_ERROR, SGEMM_CUDA_FATAL, SGEMM_NO_DEVICE); 0 (cudaSuccess) otherwise.
 */
SGEMM_EXPORT int sgemm_last_cuda_error(void);

/* Library version, e.g. "0.1.0". */
SGEMM_EXPORT const char* sgemm_version(void);

/* Number of CUDA devices. No driver or no device: SGEMM_NO_DEVICE with the reason. */
SGEMM_EXPORT sgemm_status sgemm_device_count(int* count);

SGEMM_EXPORT sgemm_status sgemm_device_query(int device, sgemm_device_info* info);

/* Workspace sizes, in bytes, for one call. */
typedef struct sgemm_workspace_sizes {
  size_t float_bytes;            /* needed by the tensor-core backends (PORTABLE needs none) */
  size_t float_bytes_coalesced;  /* also enough to coalesce segments that share a weight, when
                                    that pays (>= float_bytes; see sgemm_run) */
  size_t int_bytes;              /* needed by every backend */
} sgemm_workspace_sizes;

/*
 * Workspace sizes for a call with these arguments. Reads only dtype, x_rows, d_in, d_out,
 * num_weights, batch_size and whether weight_indices and weight_scales are NULL; no pointer is
 * dereferenced and no device is needed.
 */
SGEMM_EXPORT sgemm_status sgemm_workspace_size(const sgemm_run_args* args,
                                               sgemm_workspace_sizes* sizes);

/*
 * Creates a handle bound to the current device. The workspaces are device memory the caller
 * owns and keeps alive while the handle uses them. sgemm_workspace_size gives the exact need
 * of a call: the tensor-core kernels take about 100 bytes of float workspace per segment plus
 * 4 MiB (FlashInfer's advised 128 MiB covers a million segments); coalescing segments that share
 * a weight also needs x_rows * (d_in + d_out) elements. A handle and its
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

/*
 * Enqueues one segment GEMM on stream; returns without synchronising and allocates nothing.
 * Per-segment problem sizes and pointers are computed on the device. When weight_indices make
 * many segments share few weights (decode-style batches) and the float workspace holds
 * float_bytes_coalesced, the rows of segments that share a weight are gathered into one tall
 * problem per weight and the results scattered back, so the tensor cores read each weight once.
 */
SGEMM_EXPORT sgemm_status sgemm_run(sgemm_handle* handle, const sgemm_run_args* args,
                                    void* stream);

/*
 * Writes into buf (NUL-terminated, truncated to buf_len) the kernel sgemm_run would choose for
 * args on this handle, e.g. "sm90 bf16 B=row tile=128x128x64 cooperative, coalesced by weight";
 * fails like sgemm_run would for a call no kernel can run. Reads the same fields as
 * sgemm_workspace_size plus the pointers' alignment; touches no device memory.
 */
SGEMM_EXPORT sgemm_status sgemm_describe_plan(sgemm_handle* handle, const sgemm_run_args* args,
                                              char* buf, size_t buf_len);

/*
 * FlashInfer's bmm_fp8: d[i] = (a[i] * a_scale) . (b[i] * b_scale) for i < batch, on the sm_90a
 * fp8 tensor cores with fp32 accumulation (fast accumulation) and one rounding to out_dtype.
 * a and b are e4m3 or e5m2 (not both e5m2); a_scale and b_scale are device pointers to one fp32
 * dequantisation scale each. Needs a handle of backend AUTO or SM90 on a compute capability 9.0
 * device (else SGEMM_UNSUPPORTED), k % 16 == 0, n % 8 == 0, 16-byte aligned a, b and d, and
 * m, n, k, batch < 2^31. batch, m or n of 0 writes nothing; k of 0 writes zeros.
 */
typedef struct sgemm_bmm_fp8_args {
  sgemm_dtype a_dtype;    /* SGEMM_FLOAT8_E4M3 or SGEMM_FLOAT8_E5M2 */
  sgemm_dtype b_dtype;    /* SGEMM_FLOAT8_E4M3 or SGEMM_FLOAT8_E5M2 */
  sgemm_dtype out_dtype;  /* SGEMM_BFLOAT16 or SGEMM_FLOAT16 */
  const void* a;          /* (batch, m, k) row-major */
  const void* b;          /* (batch, k, n) column-major: element (k, n) of b[i] at i*n*k + n*k + k */
  const float* a_scale;   /* device scalar */
  const float* b_scale;   /* device scalar */
  void* d;                /* (batch, m, n) row-major; overwritten */
  int64_t batch;
  int64_t m;
  int64_t n;
  int64_t k;
} sgemm_bmm_fp8_args;

/*
 * Float workspace bytes sgemm_bmm_fp8 needs for args (about 100 per batch entry plus 4 MiB).
 * Reads the sizes and dtypes only; no pointer is read and no device is needed.
 */
SGEMM_EXPORT sgemm_status sgemm_bmm_fp8_workspace_size(const sgemm_bmm_fp8_args* args,
                                                       size_t* float_bytes);

/* Enqueues one bmm_fp8 on stream; returns without synchronising and allocates nothing. */
SGEMM_EXPORT sgemm_status sgemm_bmm_fp8(sgemm_handle* handle, const sgemm_bmm_fp8_args* args,
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
