package com.sparksegmentgemm.spark;

import com.sparksegmentgemm.AdapterRegistry;
import com.sparksegmentgemm.AdapterWeights;
import com.sparksegmentgemm.SegmentGemmConf;
import com.sparksegmentgemm.SegmentGemmRowUdf;
import com.sparksegmentgemm.SegmentGemmSettings;
import com.sparksegmentgemm.SegmentGemmUdf;
import java.util.List;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.FunctionIdentifier;
import org.apache.spark.sql.catalyst.expressions.Cast;
import org.apache.spark.sql.catalyst.expressions.EvalMode$;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.ExpressionInfo;
import org.apache.spark.sql.catalyst.expressions.ScalaUDF;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.internal.SQLConf;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.NumericType;
import org.apache.spark.sql.types.StringType;
import scala.Option;
import scala.Tuple3;
import scala.collection.immutable.Seq;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.AbstractFunction1;

/**
 * The SQL functions {@code segment_gemm(adapter_id, features)} and
 * {@code lora_apply(adapter_id, features)}, and their DataFrame twins.
 *
 * <p>Each call builds a Spark {@code ScalaUDF} whose function is a {@link SegmentGemmUdf}: the
 * expression the RAPIDS Accelerator replaces with its columnar {@code GpuScalaUDF} (the UDF
 * implements {@code RapidsUDF}), and that Spark evaluates row by row on the CPU otherwise.
 * Without the RAPIDS jar on the classpath (a CPU-only cluster) the function is its row-only
 * base, {@link SegmentGemmRowUdf}. The
 * settings ({@code spark.segmentgemm.*}) are read from the session when the query is analysed,
 * so {@code SET spark.segmentgemm.adapters.path=...} or {@link #useAdapters} applies to the
 * queries that follow.
 *
 * <p>They reach a session in one of three ways: the {@link SegmentGemmPlugin} adds
 * {@link SegmentGemmExtensions} to {@code spark.sql.extensions}; that extension can be named
 * there directly; or {@link #install} registers them in a session that already runs (a notebook:
 * {@code spark._jvm.com.sparksegmentgemm.spark.SegmentGemmFunctions.install(spark._jsparkSession)}).
 */
public final class SegmentGemmFunctions {
  /**
   * Whether SegmentGemmUdf (a com.nvidia.spark.RapidsUDF) can load here: with the RAPIDS
   * Accelerator jar beside ours. A CPU-only cluster without it gets the row path alone.
   */
  private static final boolean RAPIDS_UDF_LOADABLE = loadable("com.nvidia.spark.RapidsUDF");

  private SegmentGemmFunctions() {}

  private static boolean loadable(String name) {
    try {
      Class.forName(name, false, SegmentGemmFunctions.class.getClassLoader());
      return true;
    } catch (ClassNotFoundException | LinkageError e) {
      return false;
    }
  }

  /** DataFrame twin of SQL {@code segment_gemm}: {@code features . W[adapter_id]}. */
  public static Column segment_gemm(Column adapterId, Column features) {
    return functions.call_function(AdapterWeights.Function.SEGMENT_GEMM.sqlName(), adapterId,
        features);
  }

  /** DataFrame twin of SQL {@code lora_apply}: {@code features . A^T . B^T . (alpha / r)}. */
  public static Column lora_apply(Column adapterId, Column features) {
    return functions.call_function(AdapterWeights.Function.LORA_APPLY.sqlName(), adapterId,
        features);
  }

  /** Registers both functions in a running session (idempotent). */
  public static void install(SparkSession spark) {
    var registry = ((org.apache.spark.sql.classic.SparkSession) spark).sessionState()
        .functionRegistry();
    for (AdapterWeights.Function f : AdapterWeights.Function.values()) {
      Tuple3<FunctionIdentifier, ExpressionInfo, scala.Function1<Seq<Expression>, Expression>> d =
          definition(f);
      registry.registerFunction(d._1(), d._2(), d._3());
    }
  }

  /**
   * Points the session's functions at the adapters under path (any Hadoop file system), after
   * reading them once here so that a bad directory fails now, naming the file, rather than in a
   * task. Returns the adapter ids usable by segment_gemm.
   */
  public static List<String> useAdapters(SparkSession spark, String path) {
    java.util.Map<String, String> conf = new java.util.HashMap<>(
        CollectionConverters.asJava(spark.conf().getAll()));
    conf.put(SegmentGemmConf.ADAPTERS_PATH.key(), path);
    List<String> ids = AdapterRegistry.store(SegmentGemmConf.settings(conf)).dense().ids();
    spark.conf().set(SegmentGemmConf.ADAPTERS_PATH.key(), path);
    return ids;
  }

  /** The function's registry entry: name, docs, and the builder of its expression. */
  static Tuple3<FunctionIdentifier, ExpressionInfo, scala.Function1<Seq<Expression>, Expression>>
      definition(AdapterWeights.Function function) {
    String name = function.sqlName();
    String usage = function == AdapterWeights.Function.SEGMENT_GEMM
        ? "_FUNC_(adapter_id, features) - features . W for the weight W of adapter adapter_id "
          + "(from spark.segmentgemm.adapters.path), in spark.segmentgemm.computeDtype."
        : "_FUNC_(adapter_id, features) - features . A^T . B^T . (lora_alpha / r) for the PEFT "
          + "LoRA adapter adapter_id (from spark.segmentgemm.adapters.path; module "
          + "spark.segmentgemm.lora.module), in spark.segmentgemm.computeDtype.";
    String arguments = "\n    Arguments:\n      * adapter_id - STRING, INT or LONG: the adapter's id"
        + "\n      * features - ARRAY<FLOAT> (or another numeric array) of d_in values\n  ";
    ExpressionInfo info = new ExpressionInfo(SegmentGemmRowUdf.class.getName(), null, name, usage,
        arguments, "", "", "", "", "", "java_udf");
    return new Tuple3<>(FunctionIdentifier.apply(name), info, new Builder(function));
  }

  /**
   * The only class that names SegmentGemmUdf: the JVM loads it (and, verifying it, the RAPIDS
   * interface) only when the RAPIDS jar is there.
   */
  private static final class WithRapids {
    static SegmentGemmRowUdf udf(SegmentGemmSettings settings, AdapterWeights.Function function) {
      return new SegmentGemmUdf(settings, function);
    }
  }

  /** Builds the expression of one call, with the session's settings of the moment. */
  private static final class Builder extends AbstractFunction1<Seq<Expression>, Expression>
      implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    private final AdapterWeights.Function function;

    Builder(AdapterWeights.Function function) {
      this.function = function;
    }

    @Override
    public Expression apply(Seq<Expression> args) {
      String name = function.sqlName();
      if (args.size() != 2) {
        throw new IllegalArgumentException(name + " takes 2 arguments (adapter_id, features), "
            + "not " + args.size());
      }
      Expression id = adapterId(name, args.apply(0));
      Expression features = features(name, args.apply(1));
      SegmentGemmSettings settings = SegmentGemmConf.settings(
          CollectionConverters.asJava(SQLConf.get().getAllConfs()));
      SegmentGemmRowUdf udf = (RAPIDS_UDF_LOADABLE ? WithRapids.udf(settings, function)
          : new SegmentGemmRowUdf(settings, function))
          .withArgumentNames(argumentName(args.apply(0), "adapter_id"),
              argumentName(args.apply(1), "features"));
      Seq<Expression> children = CollectionConverters.asScala(List.of(id, features)).toList();
      return new ScalaUDF(udf, SegmentGemmRowUdf.RETURN_TYPE, children,
          CollectionConverters.asScala(List.<Option<
              org.apache.spark.sql.catalyst.encoders.ExpressionEncoder<?>>>of()).toList(),
          Option.empty(), Option.apply(name), true, true);
    }

    /**
     * A column's name for the messages of bad rows; the parameter's name for any other
     * expression (whose SQL text can be long: the job's parsing of CSV features).
     */
    private static String argumentName(Expression e, String parameter) {
      return e instanceof org.apache.spark.sql.catalyst.expressions.Attribute a ? a.name()
          : parameter;
    }

    /** STRING, INT and LONG as they are (the GPU path takes those); smaller integers as INT. */
    private static Expression adapterId(String name, Expression e) {
      DataType t = e.dataType();
      if (t instanceof StringType || t == DataTypes.IntegerType || t == DataTypes.LongType) {
        return e;
      }
      if (t == DataTypes.ShortType || t == DataTypes.ByteType) return cast(e, DataTypes.IntegerType);
      throw new IllegalArgumentException(name + ": adapter_id must be STRING, INT or LONG, not "
          + t.sql());
    }

    /** ARRAY&lt;FLOAT&gt; as it is; another numeric array cast to it. */
    private static Expression features(String name, Expression e) {
      DataType t = e.dataType();
      if (t instanceof ArrayType a && a.elementType() instanceof NumericType) {
        return a.elementType() == DataTypes.FloatType ? e
            : cast(e, DataTypes.createArrayType(DataTypes.FloatType, a.containsNull()));
      }
      throw new IllegalArgumentException(name + ": features must be ARRAY<FLOAT> (or an array of "
          + "numbers), not " + t.sql());
    }

    private static Expression cast(Expression e, DataType to) {
      return new Cast(e, to, Option.empty(), EvalMode$.MODULE$.fromSQLConf(SQLConf.get()));
    }
  }
}
