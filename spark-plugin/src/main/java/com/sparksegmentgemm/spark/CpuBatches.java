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
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import scala.collection.Seq;

/**
 * The job's CPU path: what {@code in.withColumn(output, segment_gemm(id, features))} gives, but
 * computed a batch of rows at a time ({@link CpuBatchSegmentGemm}: one sgemm per adapter and
 * batch) through {@code mapPartitions}, where a SQL expression sees one row at a time. Used when
 * the RAPIDS Accelerator is not there to hand the UDF whole batches.
 */
final class CpuBatches {
  private CpuBatches() {}

  /**
   * in with column output (replaced where it exists, else appended: withColumn's placement)
   * holding the function's result for (id, features), and without column drop (null: none);
   * features an array of numbers, cast to ARRAY&lt;FLOAT&gt; as the SQL functions cast them.
   */
  static Dataset<Row> withOutput(Dataset<Row> in, Column id, Column features, String output,
      String drop, AdapterWeights.Function function, SegmentGemmSettings settings,
      int batchRows) {
    // The output column first holds the row's (id, features); each batch replaces it with y.
    Dataset<Row> prepared = in.withColumn(output, struct(id, features.cast(
        DataTypes.createArrayType(DataTypes.FloatType, true))));
    // Dropped before the batches, so that a features column not written is not also turned into
    // Java objects for nothing (the struct has its values).
    if (drop != null && !drop.equalsIgnoreCase(output)) prepared = prepared.drop(drop);
    int slot = prepared.schema().fieldIndex(output);
    StructField[] fields = prepared.schema().fields().clone();
    fields[slot] = new StructField(output, SegmentGemmRowUdf.RETURN_TYPE, true,
        fields[slot].metadata());
    return prepared.mapPartitions(new Batches(settings, function, slot, batchRows),
        Encoders.row(new StructType(fields)));
  }

  /** One partition's rows, batchRows at a time. */
  private record Batches(SegmentGemmSettings settings, AdapterWeights.Function function, int slot,
      int batchRows) implements MapPartitionsFunction<Row, Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public Iterator<Row> call(Iterator<Row> input) {
      CpuBatchSegmentGemm gemm = new CpuBatchSegmentGemm(settings, function);
      return new Iterator<>() {
        private final List<Row> batch = new ArrayList<>(batchRows);
        private float[][] y = new float[0][];
        private int next;

        @Override
        public boolean hasNext() {
          if (next < batch.size()) return true;
          if (!input.hasNext()) return false;
          batch.clear();
          next = 0;
          while (batch.size() < batchRows && input.hasNext()) batch.add(input.next());
          Object[] ids = new Object[batch.size()];
          @SuppressWarnings("unchecked")
          Seq<Float>[] features = new Seq[batch.size()];
          for (int i = 0; i < ids.length; i++) {
            Row args = batch.get(i).getStruct(slot);
            ids[i] = args.get(0);
            features[i] = args.isNullAt(1) ? null : args.getSeq(1);
          }
          y = gemm.evaluate(ids, features);
          return true;
        }

        @Override
        public Row next() {
          if (!hasNext()) throw new NoSuchElementException();
          Row row = batch.get(next);
          Object[] values = new Object[row.length()];
          for (int i = 0; i < values.length; i++) values[i] = row.get(i);
          values[slot] = y[next++];
          return RowFactory.create(values);
        }
      };
    }
  }
}
