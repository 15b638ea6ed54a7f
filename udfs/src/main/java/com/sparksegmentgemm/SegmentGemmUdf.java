package com.sparksegmentgemm;

import ai.rapids.cudf.ColumnVector;
import ai.rapids.cudf.HostColumnVector;
import com.nvidia.spark.RapidsUDF;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link SegmentGemmRowUdf} with the GPU path: a {@code com.nvidia.spark.RapidsUDF}, so that under
 * the RAPIDS Accelerator {@link #evaluateColumnar} computes a whole batch on the GPU
 * ({@link ColumnarSegmentGemm}), while Spark without it calls {@link #call} row by row. One class
 * is both paths, so they cannot drift: both give values of the compute dtype that agree within
 * the tolerances of docs/udf.md, the same nulls, and the same errors. Loading it needs the RAPIDS
 * Accelerator jar (or cuDF and that one interface) on the classpath; the SQL functions fall back
 * to {@link SegmentGemmRowUdf} where it is absent.
 *
 * <pre>{@code
 * SegmentGemmUdf udf = new SegmentGemmUdf(SegmentGemmConf.settings(spark.conf()));
 * spark.udf().register("segment_gemm", udf, SegmentGemmUdf.RETURN_TYPE);
 * spark.sql("SELECT segment_gemm(adapter_id, features) AS y FROM embeddings");
 * }</pre>
 *
 * <p>It loads no native library and touches no GPU until {@code evaluateColumnar} runs on an
 * executor.
 */
public final class SegmentGemmUdf extends SegmentGemmRowUdf implements RapidsUDF {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(SegmentGemmUdf.class);

  /** segment_gemm. */
  public SegmentGemmUdf(SegmentGemmSettings settings) {
    this(settings, AdapterWeights.Function.SEGMENT_GEMM);
  }

  public SegmentGemmUdf(SegmentGemmSettings settings, AdapterWeights.Function function) {
    super(settings, function);
  }

  /** The GPU path: one batch, (adapter_id, features) columns in, LIST&lt;FLOAT&gt; out. */
  @Override
  public ColumnVector evaluateColumnar(int numRows, ColumnVector... args) {
    if (args.length != 2) {
      throw new IllegalArgumentException(sqlFunction().sqlName() + " takes 2 arguments (adapter_id, "
          + "features), not " + args.length);
    }
    if (settings().backend() == SegmentGemm.Backend.CPU) return evaluateOnHost(args[0], args[1]);
    try {
      return new ColumnarSegmentGemm(settings(), sqlFunction(), null, idColumn(), featuresColumn())
          .evaluate(args[0], args[1]);
    } catch (RuntimeException e) {
      throw NativeErrors.forRapids(e);  // a dead CUDA context must end the executor, not the task
    }
  }

  /**
   * backend=CPU under the RAPIDS Accelerator: the batch is copied to the host and computed row by
   * row, exactly as {@link #call} does (for debugging and comparisons; slow).
   */
  private ColumnVector evaluateOnHost(ColumnVector ids, ColumnVector features) {
    LOG.debug("{}: backend CPU, computing {} rows on the host", sqlFunction().sqlName(),
        ids.getRowCount());
    try (HostColumnVector hostIds = ids.copyToHost();
         HostColumnVector hostFeatures = features.copyToHost()) {
      int rows = (int) hostIds.getRowCount();
      List<List<Float>> out = new ArrayList<>(rows);
      for (int r = 0; r < rows; r++) {
        Object id = hostIds.isNull(r) ? null : switch (hostIds.getType().getTypeId()) {
          case STRING -> hostIds.getJavaString(r);
          case INT32 -> hostIds.getInt(r);
          default -> hostIds.getLong(r);
        };
        List<Float> x = hostFeatures.isNull(r) ? null : hostFeatures.getList(r);
        float[] y = call(id, x == null ? null
            : scala.jdk.javaapi.CollectionConverters.asScala(x).toSeq());
        out.add(y == null ? null : boxed(y));
      }
      return ColumnVector.fromLists(ColumnarSegmentGemm.RESULT_TYPE, out.toArray(new List[0]));
    }
  }

  private static List<Float> boxed(float[] y) {
    List<Float> l = new ArrayList<>(y.length);
    for (float v : y) l.add(v);
    return l;
  }
}
