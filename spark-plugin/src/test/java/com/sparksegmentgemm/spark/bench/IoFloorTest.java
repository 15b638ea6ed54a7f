package com.sparksegmentgemm.spark.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.sparksegmentgemm.SharedSpark;
import java.util.List;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;

/** The I/O floor writes the job's columns, in its order, with the features as the output. */
class IoFloorTest {
  @Test
  void featuresBecomeTheOutputColumn() {
    SparkSession spark = SharedSpark.get();
    var floats = DataTypes.createArrayType(DataTypes.FloatType);
    Dataset<Row> input = spark.createDataFrame(List.of(
        RowFactory.create(7L, "t0", List.of(1f, 2f)), RowFactory.create(8L, "t1", List.of(3f, 4f))),
        new StructType().add("id", DataTypes.LongType).add("adapter_id", DataTypes.StringType)
            .add("features", floats));
    Dataset<Row> out = IoFloor.query(input);
    assertEquals(List.of("id", "adapter_id", "output"), List.of(out.columns()));
    // The job's output type, SegmentGemmRowUdf.RETURN_TYPE: elements declared non-null.
    assertEquals(DataTypes.createArrayType(DataTypes.FloatType, false),
        out.schema().apply("output").dataType());
    List<Row> rows = out.orderBy("id").collectAsList();
    assertEquals(List.of(3f, 4f), rows.get(1).getList(2));
    // With a width (the job's d_out below d_in): the first features, the same output type.
    Dataset<Row> narrow = IoFloor.query(input, 1);
    assertEquals(DataTypes.createArrayType(DataTypes.FloatType, false),
        narrow.schema().apply("output").dataType());
    assertEquals(List.of(3f), narrow.orderBy("id").collectAsList().get(1).getList(2));
  }
}
