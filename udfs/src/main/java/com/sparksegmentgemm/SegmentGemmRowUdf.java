package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.DType;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.collection.Seq;
import scala.runtime.AbstractFunction2;

/**
 * The row-by-row (CPU) path of {@code segment_gemm(adapter_id, features ARRAY<FLOAT>) ->
 * ARRAY<FLOAT>} ({@code features . W} for the adapter's weight W) and of
 * {@code lora_apply(adapter_id, features)} ({@code features . A^T . B^T . (alpha / r)} for the
 * adapter's PEFT LoRA weights, the intermediate rows rounded to the compute dtype), in the compute
 * dtype of its settings. It needs neither cuDF nor the RAPIDS Accelerator on the classpath, so a
 * CPU-only cluster runs it as it is; {@link SegmentGemmUdf} adds the GPU path.
 *
 * <p>It is both a Java {@code UDF2} (for {@code spark.udf().register}) and a Scala function (for
 * the {@code ScalaUDF} expressions the SQL functions build). adapter_id may be STRING, INT or
 * LONG (a number matches the adapter whose id is its decimal string). A null adapter_id or null
 * features give a null row. Serializable; it touches no GPU.
 */
public class SegmentGemmRowUdf extends AbstractFunction2<Object, Seq<Float>, float[]>
    implements UDF2<Object, Seq<Float>, float[]> {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(SegmentGemmRowUdf.class);

  /** ARRAY&lt;FLOAT&gt; without null elements. */
  public static final DataType RETURN_TYPE =
      DataTypes.createArrayType(DataTypes.FloatType, false);

  private final SegmentGemmSettings settings;
  private final AdapterWeights.Function function;
  private transient AdapterWeights weights;
  /** Whether this instance (one per task) has warned of an overflow. */
  private transient boolean warnedOverflow;
  private String idColumn = "adapter_id";
  private String featuresColumn = "features";

  public SegmentGemmRowUdf(SegmentGemmSettings settings, AdapterWeights.Function function) {
    this.settings = settings;
    this.function = function;
  }

  /**
   * The names of the arguments as the query wrote them (a column name, or an expression's SQL),
   * for the messages of bad rows; call before the UDF is used. Returns this.
   */
  public SegmentGemmRowUdf withArgumentNames(String idName, String featuresName) {
    this.idColumn = idName;
    this.featuresColumn = featuresName;
    return this;
  }

  /** The adapter id argument's name, for messages. */
  public String idColumn() {
    return idColumn;
  }

  /** The features argument's name, for messages. */
  public String featuresColumn() {
    return featuresColumn;
  }

  public SegmentGemmSettings settings() {
    return settings;
  }

  public AdapterWeights.Function sqlFunction() {
    return function;
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
    long start = System.nanoTime();
    float[] y = compute(adapterId, features);
    SegmentGemmMetrics.recordCpuRows(1, features == null ? 0 : 4L * features.length(),
        System.nanoTime() - start);
    return y;
  }

  private float[] compute(Object adapterId, Seq<Float> features) {
    if (adapterId == null || features == null) return null;
    AdapterWeights w = weights();
    DType dtype = settings.computeDtype();
    float[] x = new float[w.dIn()];
    int a;
    try {
      a = readRow(w, dtype, idColumn, featuresColumn, adapterId, features, x, 0, "");
    } catch (BadRowException e) {
      return badRow(e);
    }
    float[] y = w.multiply(a, x, 1, dtype, settings.fp8Weights());
    if (!warnedOverflow && !allFinite(y) && allFinite(x)) {
      // Finite features in, Inf or NaN out: the sums passed the dtype's range (float16's is
      // +-65504), which would otherwise go unnoticed. Once per task.
      warnedOverflow = true;
      LOG.warn("{}: a row for adapter '{}' has finite features but Inf or NaN outputs: the "
          + "products overflowed {} (largest finite value {}); {} or float32 has more range",
          function.sqlName(), adapterId, dtype, largestFinite(dtype),
          dtype == DType.FLOAT16 ? "bfloat16" : "float32");
    }
    return y;
  }

  private static boolean allFinite(float[] y) {
    for (float v : y) if (!Float.isFinite(v)) return false;
    return true;
  }

  /** The largest finite value of a dtype. */
  private static float largestFinite(DType dtype) {
    return switch (dtype) {
      case FLOAT16 -> 65504f;
      case BFLOAT16 -> 3.3895314e38f;
      case FLOAT32 -> Float.MAX_VALUE;
    };
  }

  /**
   * The one check of an input row, shared by this row path, {@link CpuBatchSegmentGemm} and the
   * job's search for a bad row: returns the index of the row's adapter, having written its
   * features rounded to dtype to {@code x[off .. off + d_in)}, or -1 for a null id or null
   * features (a null row).
   *
   * @param features the row's values, a null one as any value (firstNull says where)
   * @param firstNull the index of the first null value in features, or -1 for none
   * @param where where the row is, for the message (see {@link BadRowException}), or empty
   * @throws BadRowException for an unknown adapter, features of the wrong length or a null
   *     value (the caller applies onBadRow)
   */
  public static int readRow(AdapterWeights w, DType dtype, String idColumn,
      String featuresColumn, Object adapterId, float[] features, int firstNull, float[] x,
      int off, String where) {
    if (adapterId == null || features == null) return -1;
    String id = adapterId.toString();
    int a = w.indexOf(id);
    if (a < 0) throw BadRowException.unknownAdapter(w, idColumn, id, where);
    int dIn = w.dIn();
    if (features.length != dIn) {
      throw BadRowException.wrongLength(w, featuresColumn, id, features.length, where);
    }
    if (firstNull >= 0) throw BadRowException.nullValue(w, featuresColumn, id, firstNull, where);
    for (int i = 0; i < dIn; i++) x[off + i] = dtype.round(features[i]);
    return a;
  }

  /**
   * {@link #readRow(AdapterWeights, DType, String, String, Object, float[], int, float[], int,
   * String) readRow} of features as Spark SQL hands them to a Scala function (boxed, a null value
   * as null).
   */
  public static int readRow(AdapterWeights w, DType dtype, String idColumn,
      String featuresColumn, Object adapterId, Seq<Float> features, float[] x, int off,
      String where) {
    if (adapterId == null || features == null) return -1;
    float[] values = new float[features.length()];
    int firstNull = -1;
    for (int i = 0; i < values.length; i++) {
      Float v = features.apply(i);
      if (v != null) {
        values[i] = v;
      } else if (firstNull < 0) {
        firstNull = i;
      }
    }
    return readRow(w, dtype, idColumn, featuresColumn, adapterId, values, firstNull, x, off,
        where);
  }

  /** The same as {@link #call}: what Spark's ScalaUDF calls when the SQL functions build it. */
  @Override
  public float[] apply(Object adapterId, Seq<Float> features) {
    return call(adapterId, features);
  }

  private float[] badRow(BadRowException e) {
    if (settings.onBadRow() == SegmentGemmConf.OnBadRow.NULL) return null;
    throw e;
  }

  private AdapterWeights weights() {
    AdapterWeights w = weights;
    if (w == null) {
      w = AdapterRegistry.weights(settings, function);
      weights = w;
    }
    return w;
  }
}
