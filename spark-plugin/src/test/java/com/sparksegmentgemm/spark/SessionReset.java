package com.sparksegmentgemm.spark;

import com.sparksegmentgemm.AdapterRegistry;
import com.sparksegmentgemm.SegmentGemmConf;
import com.sparksegmentgemm.SharedSpark;

/** What each test that points the shared session at adapters undoes afterwards. */
final class SessionReset {
  private SessionReset() {}

  /** Unsets every spark.segmentgemm.* key of the shared session and forgets loaded adapters. */
  static void forgetAdapters() {
    for (SegmentGemmConf.Entry<?> e : SegmentGemmConf.ALL) SharedSpark.get().conf().unset(e.key());
    AdapterRegistry.clear();
  }
}
