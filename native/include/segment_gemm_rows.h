/*
 * Spark Segment GEMM: what a columnar caller (the Spark UDF) needs around the GEMM: grouping a
 * batch's rows by adapter, gathering the rows of a cuDF LIST<FLOAT32> column into the dense
 * compute-dtype matrix x, widening the compute-dtype results back to float32, and timing those
 * phases. One pass over the data each, on the caller's stream, without a synchronisation. Conversions are bit-exact with the Java
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

/*
 * The group phase of a columnar batch in one pass on stream, without a synchronisation: which
 * rows are computed, their order by adapter, where each lands in the result, and the rows per
 * adapter. Row r (r < rows) is computed when
 *   present[r] != 0 (its adapter id and its features are not null; present NULL: every row is),
 *   known[r] != 0 and 0 <= adapter[r] < num_adapters (the id was found; known NULL: all were),
 *   offsets[r + 1] - offsets[r] == d_in (its list holds exactly d_in values), and
 *   has_null[r] == 0 (none of those values is null; has_null NULL: none is).
 * A present row that is not computed is a bad row. Outputs, device memory of the caller:
 *   order[0 .. n): the computed rows, sorted by adapter, stable (row order within an adapter);
 *   dest[0 .. n): the result row of order[i]: how many computed rows come before it;
 *   out_offsets[0 .. rows]: rank(r) * d_out, the offsets of the result LIST column (a row that is
 *       not computed is empty);
 *   valid: a cuDF validity bitmask, bit r set when row r is computed (ceil(rows / 32) words);
 *   summary[0 .. num_adapters + 2): the computed rows of each adapter, then n, then the first bad
 *       row or -1: the one small array the caller copies to the host.
 * workspace: at least sgemm_group_rows_workspace_size bytes (which needs the current device).
 * rows must fit in int32 (cuDF's column sizes); out_offsets are int32 as cuDF's, and hold only
 * when n * d_out fits too (the caller checks n from the summary before it uses them).
 */
SGEMM_EXPORT sgemm_status sgemm_group_rows_workspace_size(int64_t rows, int32_t num_adapters,
                                                          size_t* bytes);

SGEMM_EXPORT sgemm_status sgemm_group_rows(const int32_t* adapter, const uint8_t* known,
                                           const uint8_t* present, const int32_t* offsets,
                                           const uint8_t* has_null, int64_t rows, int64_t d_in,
                                           int32_t num_adapters, int64_t d_out, int32_t* order,
                                           int32_t* dest, int32_t* out_offsets, uint32_t* valid,
                                           int32_t* summary, void* workspace,
                                           size_t workspace_bytes, void* stream);

/*
 * Phase timing by CUDA events (no synchronisation until read): marks events recorded on a
 * stream, sgemm_timer_read waits for the last recorded one and gives the milliseconds between
 * consecutive marks.
 */
typedef struct sgemm_timer sgemm_timer;

/* 2 <= marks <= 64. */
SGEMM_EXPORT sgemm_status sgemm_timer_create(sgemm_timer** timer, int marks);

/* Records mark (0 <= mark < marks) on stream. */
SGEMM_EXPORT sgemm_status sgemm_timer_mark(sgemm_timer* timer, int mark, void* stream);

/* ms[i] = time from mark i to mark i + 1, for i < marks - 1; waits for the last mark. */
SGEMM_EXPORT sgemm_status sgemm_timer_read(sgemm_timer* timer, float* ms);

SGEMM_EXPORT sgemm_status sgemm_timer_destroy(sgemm_timer* timer);

#ifdef __cplusplus
}
#endif

#endif /* SEGMENT_GEMM_ROWS_H */
