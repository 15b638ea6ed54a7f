package com.sparksegmentgemm.spark;

import static org.apache.spark.sql.functions.struct;

import com.sparksegmentgemm.AdapterWeights;
import com.sparksegmentgemm.CpuBatchSegmentGemm;
import com.sparksegmentgemm.SegmentGemmRowUdf;
import com.sparksegmentgemm.SegmentGemmSettings;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * The job's CPU path: what {@code in.withColumn(output, segment_gemm(id, features))} gives, but
 * computed a batch of rows at a time ({@link CpuBatchSegmentGemm}: one sgemm per adapter and
 * batch), where a SQL expression sees one row at a time. Used when the RAPIDS Accelerator is not
 * there to hand the UDF whole batches.
 *
 * <p>The batches read Spark's internal rows (the input query's {@code toRdd}) and the result is a
 * DataFrame over them ({@code internalCreateDataFrame}: the plan shows {@code Scan ExistingRDD}),
 * not {@code Dataset.mapPartitions} with a Row encoder: that turns each row's features into a
 * boxed {@code Seq<Float>} and each output back through the encoder, which cost more than the
 * sgemm where rows are narrow (256 floats in, 32 out).
 */
final class CpuBatches {
  private CpuBatches() {}

  /**
   * in with column output (replaced where it exists, else appended: withColumn's placement)
   * holding the function's result for (id, features), and without column drop (null: none);
   * features an array of numbers, cast to ARRAY&lt;FLOAT&gt; as the SQL functions cast them. in
   * must be a classic (not Spark Connect) Dataset, as the job's are.
   */
  static Dataset<Row> withOutput(Dataset<Row> in, Column id, Column features, String output,
      String drop, AdapterWeights.Function function, SegmentGemmSettings settings,
      int batchRows) {
    // The output column first holds the row's (id, features); each batch replaces it with y.
    Dataset<Row> prepared = in.withColumn(output, struct(id, features.cast(
        DataTypes.createArrayType(DataTypes.FloatType, true))));
    // Dropped before the batches, so that a features column not written is not also copied
    // through them (the struct has its values).
    if (drop != null && !drop.equalsIgnoreCase(output)) prepared = prepared.drop(drop);
    StructType inSchema = prepared.schema();
    int slot = inSchema.fieldIndex(output);
    StructField[] fields = inSchema.fields().clone();
    fields[slot] = new StructField(output, SegmentGemmRowUdf.RETURN_TYPE, true,
        fields[slot].metadata());
    StructType outSchema = new StructType(fields);
    var classic = (org.apache.spark.sql.classic.Dataset<Row>) prepared;
    RDD<InternalRow> rows = classic.queryExecution().toRdd().toJavaRDD()
        .mapPartitions(new Batches(settings, function, inSchema, slot, batchRows)).rdd();
    return classic.sparkSession().internalCreateDataFrame(rows, outSchema, false);
  }

  /** One partition's rows, batchRows at a time. */
  private record Batches(SegmentGemmSettings settings, AdapterWeights.Function function,
      StructType schema, int slot, int batchRows)
      implements FlatMapFunction<Iterator<InternalRow>, InternalRow> {
    private static final long serialVersionUID = 1L;

    @Override
    public Iterator<InternalRow> call(Iterator<InternalRow> input) {
      CpuBatchSegmentGemm gemm = new CpuBatchSegmentGemm(settings, function);
      DataType[] types = new DataType[schema.length()];
      for (int i = 0; i < types.length; i++) types[i] = schema.fields()[i].dataType();
      DataType idType = ((StructType) types[slot]).fields()[0].dataType();
      return new Iterator<>() {
        private final List<InternalRow> batch = new ArrayList<>(batchRows);
        private float[][] y = new float[0][];
        private int next;

        @Override
        public boolean hasNext() {
          if (next < batch.size()) return true;
          if (!input.hasNext()) return false;
          batch.clear();
          next = 0;
          // Copied: the query hands out one row object, overwritten by each next().
          while (batch.size() < batchRows && input.hasNext()) batch.add(input.next().copy());
          int n = batch.size();
          Object[] ids = new Object[n];
          float[][] features = new float[n][];
          int[] firstNull = new int[n];
          for (int i = 0; i < n; i++) {
            InternalRow args = batch.get(i).getStruct(slot, 2);
            // A string id as a UTF8String, whose toString is the id, as the row UDF's String.
            ids[i] = args.get(0, idType);
            firstNull[i] = -1;
            if (args.isNullAt(1)) continue;
            ArrayData values = args.getArray(1);
            features[i] = values.toFloatArray();
            for (int j = 0; j < features[i].length && firstNull[i] < 0; j++) {
              if (values.isNullAt(j)) firstNull[i] = j;
            }
          }
          y = gemm.evaluate(ids, features, firstNull);
          return true;
        }

        @Override
        public InternalRow next() {
          if (!hasNext()) throw new NoSuchElementException();
          InternalRow row = batch.get(next);
          Object[] values = new Object[types.length];
          for (int i = 0; i < values.length; i++) {
            if (i != slot) values[i] = row.get(i, types[i]);
          }
          float[] out = y[next++];
          values[slot] = out == null ? null : UnsafeArrayData.fromPrimitiveArray(out);
          // Not projected to an UnsafeRow here: the scan over this RDD (RDDScanExec) projects
          // every row it reads.
          return new GenericInternalRow(values);
        }
      };
    }
  }
}
