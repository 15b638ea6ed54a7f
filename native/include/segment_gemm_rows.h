/*
 * Spark Segment GEMM: row movement with dtype conversion for columnar callers (the Spark UDF):
 * gathering the rows of a cuDF LIST<FLOAT32> column into the dense compute-dtype matrix x, and
 * widening the compute-dtype results back to float32. One pass over the data each, on the
 * caller's stream, without a synchronisation. Conversions are bit-exact with the Java
 * reference (com.sparksegmentgemm.nativelib.DType): round to nearest even, infinities kept,
 * NaN stays a quiet NaN with its sign and top payload bits. Status codes and sgemm_last_error as
 * in segment_gemm.h.
 */
#ifndef SEGMENT_GEMM_ROWS_H
#define SEGMENT_GEMM_ROWS_H

#include "segment_gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * dst[r * d + j] = dtype(values[offsets[rows[r]] + j]) for r < n, j < d: row rows[r] of a list
 * column (child values, int32 offsets) becomes row r of the (n, d) row-major matrix dst of dtype
 * (float32 is a plain copy). Every selected row must hold at least d values.
 */
SGEMM_EXPORT sgemm_status sgemm_gather_float_rows(const float* values, const int32_t* offsets,
                                                  const int32_t* rows, int64_t n, int64_t d,
                                                  sgemm_dtype dtype, void* dst, void* stream);

/*
 * dst[dest_rows[r] * d + j] = float(src[r * d + j]) for r < n, j < d: row r of the (n, d)
 * row-major matrix src of dtype (the GEMM's output in sorted order) becomes row dest_rows[r] of
 * the float32 child values of the result list column (widened exactly; float32 is a copy).
 */
SGEMM_EXPORT sgemm_status sgemm_scatter_rows_to_float(const void* src, sgemm_dtype dtype,
                                                      const int32_t* dest_rows, int64_t n,
                                                      int64_t d, float* dst, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* SEGMENT_GEMM_ROWS_H */
