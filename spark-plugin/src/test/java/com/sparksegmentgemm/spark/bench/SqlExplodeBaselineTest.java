package com.sparksegmentgemm.spark.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sparksegmentgemm.SharedSpark;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;

/** The benchmark's SQL baseline computes what segment_gemm computes (so its timing means something). */
class SqlExplodeBaselineTest {
  @Test
  void baselineMatchesADirectProduct() {
    SparkSession spark = SharedSpark.get();
    int dIn = 6, dOut = 5, adapters = 3;
    Random rnd = new Random(11);
    float[][] w = new float[adapters][dIn * dOut];
    List<Row> wRows = new ArrayList<>();
    for (int a = 0; a < adapters; a++) {
      for (int k = 0; k < dIn; k++) {
        List<Float> row = new ArrayList<>();
        for (int n = 0; n < dOut; n++) {
          w[a][k * dOut + n] = (float) rnd.nextGaussian();
          row.add(w[a][k * dOut + n]);
        }
        wRows.add(RowFactory.create("t" + a, k, row));
      }
    }
    List<Row> in = new ArrayList<>();
    float[][] x = new float[40][dIn];
    for (int i = 0; i < 40; i++) {
      List<Float> f = new ArrayList<>();
      for (int k = 0; k < dIn; k++) f.add(x[i][k] = (float) rnd.nextGaussian());
      in.add(RowFactory.create((long) i, "t" + (i % adapters), f));
    }
    var floats = DataTypes.createArrayType(DataTypes.FloatType);
    Dataset<Row> input = spark.createDataFrame(in, new StructType().add("id", DataTypes.LongType)
        .add("adapter_id", DataTypes.StringType).add("features", floats));
    Dataset<Row> weights = spark.createDataFrame(wRows, new StructType()
        .add("adapter_id", DataTypes.StringType).add("k", DataTypes.IntegerType).add("w_row", floats));
    List<Row> out = SqlExplodeBaseline.query(spark, input, weights).orderBy("id").collectAsList();
    assertEquals(40, out.size());
    for (Row r : out) {
      int i = (int) r.getLong(0);
      List<Float> y = r.getList(2);
      assertEquals(dOut, y.size());
      for (int n = 0; n < dOut; n++) {
        double ref = 0;
        for (int k = 0; k < dIn; k++) ref += (double) x[i][k] * w[i % adapters][k * dOut + n];
        assertTrue(Math.abs(y.get(n) - ref) <= 1e-5 * (1 + Math.abs(ref)), i + "," + n);
      }
    }
  }
}
