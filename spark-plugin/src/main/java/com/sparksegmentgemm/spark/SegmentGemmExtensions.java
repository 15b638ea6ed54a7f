package com.sparksegmentgemm.spark;

import com.sparksegmentgemm.AdapterWeights;
import org.apache.spark.sql.SparkSessionExtensions;
import scala.runtime.AbstractFunction1;
import scala.runtime.BoxedUnit;

/**
 * {@code spark.sql.extensions=com.sparksegmentgemm.spark.SegmentGemmExtensions}: adds the SQL
 * functions {@code segment_gemm} and {@code lora_apply} ({@link SegmentGemmFunctions}) to every
 * session. {@link SegmentGemmPlugin} adds it for you.
 */
public final class SegmentGemmExtensions extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {
  @Override
  public BoxedUnit apply(SparkSessionExtensions extensions) {
    for (AdapterWeights.Function f : AdapterWeights.Function.values()) {
      extensions.injectFunction(SegmentGemmFunctions.definition(f));
    }
    return BoxedUnit.UNIT;
  }
}
