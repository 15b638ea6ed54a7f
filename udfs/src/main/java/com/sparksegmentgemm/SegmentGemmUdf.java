package com.sparksegmentgemm;

import ai.rapids.cudf.ColumnVector;
import ai.rapids.cudf.HostColumnVector;
import com.nvidia.spark.RapidsUDF;
import com.sparksegmentgemm.nativelib.DType;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.collection.Seq;

/**
 * {@code segment_gemm(adapter_id, features ARRAY<FLOAT>) -> ARRAY<FLOAT>}: {@code features . W}
 * for the adapter's weight W, in the compute dtype of its settings. One class is both paths, so
 * they cannot drift: without the RAPIDS Accelerator Spark calls {@link #call} row by row on the
 * CPU; with it, {@link #evaluateColumnar} computes a whole batch on the GPU
 * ({@link ColumnarSegmentGemm}). Both give values of the compute dtype that agree within the
 * tolerances of docs/udf.md, the same nulls, and the same errors.
 *
 * <pre>{@code
 * SegmentGemmUdf udf = new SegmentGemmUdf(SegmentGemmConf.settings(spark.conf()));
 * spark.udf().register("segment_gemm", udf, SegmentGemmUdf.RETURN_TYPE);
 * spark.sql("SELECT segment_gemm(adapter_id, features) AS y FROM embeddings");
 * }</pre>
 *
 * <p>adapter_id may be STRING, INT or LONG (a number matches the adapter whose id is its decimal
 * string). A null adapter_id or null features give a null row. Serializable; it loads no native
 * library and touches no GPU until {@code evaluateColumnar} runs on an executor.
 */
public final class SegmentGemmUdf implements UDF2<Object, Seq<Float>, float[]>, RapidsUDF {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(SegmentGemmUdf.class);

  /** ARRAY&lt;FLOAT&gt; without null elements. */
  public static final DataType RETURN_TYPE =
      DataTypes.createArrayType(DataTypes.FloatType, false);

  private final SegmentGemmSettings settings;
  private transient AdapterStore store;

  public SegmentGemmUdf(SegmentGemmSettings settings) {
    this.settings = settings;
  }

  public SegmentGemmSettings settings() {
    return settings;
  }

  /** Registers this UDF under name in the session, for SQL. */
  public void register(SparkSession spark, String name) {
    spark.udf().register(name, this, RETURN_TYPE);
  }

  /** The UDF for the DataFrame API: {@code df.select(udf.function().apply(col("id"), col("x")))}. */
  public UserDefinedFunction function() {
    return functions.udf(this, RETURN_TYPE);
  }

  /** The CPU path: one row. */
  @Override
  public float[] call(Object adapterId, Seq<Float> features) {
    if (adapterId == null || features == null) return null;
    AdapterStore s = store();
    String id = adapterId.toString();
    int a = s.indexOf(id);
    if (a < 0) return badRow(BadRowException.unknownAdapter(s, id, ""));
    int dIn = s.dIn();
    if (features.length() != dIn) {
      return badRow(BadRowException.wrongLength(id, features.length(), dIn, ""));
    }
    DType dtype = settings.computeDtype();
    float[] x = new float[dIn];
    for (int i = 0; i < dIn; i++) {
      Float v = features.apply(i);
      if (v == null) return badRow(BadRowException.nullValue(id, ""));
      x[i] = dtype.round(v);
    }
    float[] y = new float[s.dOut()];
    CpuSegmentGemm.multiplyRounded(dtype, x, 0, 1, s.roundedWeight(a, dtype), 0, dIn, s.dOut(),
        settings.weightColumnMajor(), y, 0);
    return y;
  }

  /** The GPU path: one batch, (adapter_id, features) columns in, LIST&lt;FLOAT&gt; out. */
  @Override
  public ColumnVector evaluateColumnar(int numRows, ColumnVector... args) {
    if (args.length != 2) {
      throw new IllegalArgumentException("segment_gemm takes 2 arguments (adapter_id, features), not "
          + args.length);
    }
    if (settings.backend() == SegmentGemm.Backend.CPU) return evaluateOnHost(args[0], args[1]);
    return new ColumnarSegmentGemm(settings, null).evaluate(args[0], args[1]);
  }

  /**
   * backend=CPU under the RAPIDS Accelerator: the batch is copied to the host and computed row by
   * row, exactly as {@link #call} does (for debugging and comparisons; slow).
   */
  private ColumnVector evaluateOnHost(ColumnVector ids, ColumnVector features) {
    LOG.debug("segment_gemm: backend CPU, computing {} rows on the host", ids.getRowCount());
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
      return ColumnVector.fromLists(new HostColumnVector.ListType(true,
          new HostColumnVector.BasicType(false, ai.rapids.cudf.DType.FLOAT32)),
          out.toArray(new List[0]));
    }
  }

  private static List<Float> boxed(float[] y) {
    List<Float> l = new ArrayList<>(y.length);
    for (float v : y) l.add(v);
    return l;
  }

  private float[] badRow(BadRowException e) {
    if (settings.onBadRow() == SegmentGemmConf.OnBadRow.NULL) return null;
    throw e;
  }

  private AdapterStore store() {
    AdapterStore s = store;
    if (s == null) {
      s = AdapterRegistry.store(settings);
      store = s;
    }
    return s;
  }
}
