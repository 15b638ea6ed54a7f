package com.sparksegmentgemm;

import com.sparksegmentgemm.nativelib.SegmentGemmNative;
import dev.ludovic.netlib.blas.BLAS;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Locale;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The BLAS of the CPU path: netlib's {@code BLAS.getInstance()}, which takes the first of a
 * native BLAS (JNI), its vectorised Java BLAS and plain Java that loads. Measured with one thread,
 * 1024³ sgemm (this project's 2-core build machine, 2026-12-03): 60 GFLOP/s through OpenBLAS,
 * 21 with the Java vector API, 7 without. A machine rarely has a fast {@code libblas.so.3}
 * (Debian's default is the reference BLAS), so on linux x86-64 this class first points netlib at
 * the OpenBLAS this project ships ({@code org.bytedeco:openblas}, extracted once per JVM to a
 * temporary folder), limited to one thread per call: Spark already runs one task per core.
 *
 * <p>A user who names a BLAS with netlib's own system properties
 * ({@code -Ddev.ludovic.netlib.blas.nativeLib=libmkl_rt.so} or {@code ...nativeLibPath=/path})
 * gets that one; where the bundled OpenBLAS cannot be loaded, netlib's own choice stands (logged
 * once).
 */
final class CpuBlas {
  private static final Logger LOG = LoggerFactory.getLogger(CpuBlas.class);
  private static final String PATH_PROPERTY = "dev.ludovic.netlib.blas.nativeLibPath";
  private static final String LIB_PROPERTY = "dev.ludovic.netlib.blas.nativeLib";
  private static final String RESOURCES = "/org/bytedeco/openblas/linux-x86_64/";
  /** libopenblas.so.0 and what it needs beside it (its RUNPATH is $ORIGIN). */
  private static final List<String> FILES = List.of("libopenblas.so.0", "libgfortran.so.5",
      "libquadmath.so.0", "libgcc_s.so.1");

  private CpuBlas() {}

  private static final class Holder {
    static final BLAS BLAS_INSTANCE = load();
  }

  /** The BLAS every CPU-path sgemm uses (chosen once per JVM). */
  static BLAS get() {
    return Holder.BLAS_INSTANCE;
  }

  private static BLAS load() {
    if (System.getProperty(PATH_PROPERTY) == null && System.getProperty(LIB_PROPERTY) == null) {
      useBundledOpenBlas();
    }
    BLAS blas = BLAS.getInstance();
    LOG.info("segment_gemm CPU path: BLAS {}{}", blas.getClass().getSimpleName(),
        System.getProperty(PATH_PROPERTY) == null ? "" : " (" + System.getProperty(PATH_PROPERTY) + ")");
    return blas;
  }

  private static void useBundledOpenBlas() {
    String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
    String arch = System.getProperty("os.arch", "");
    if (!os.startsWith("linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) return;
    if (CpuBlas.class.getResource(RESOURCES + FILES.get(0)) == null) {
      LOG.info("segment_gemm CPU path: no bundled OpenBLAS on the classpath; netlib chooses");
      return;
    }
    try {
      Path dir = Files.createTempDirectory("segmentgemm-openblas-");
      dir.toFile().deleteOnExit();
      for (String f : FILES) {
        Path to = dir.resolve(f);
        try (InputStream in = CpuBlas.class.getResourceAsStream(RESOURCES + f)) {
          if (in == null) throw new IOException(RESOURCES + f + " is missing from the classpath");
          Files.copy(in, to, StandardCopyOption.REPLACE_EXISTING);
        }
        to.toFile().deleteOnExit();
      }
      String lib = dir.resolve(FILES.get(0)).toString();
      int threads = SegmentGemmNative.openBlasThreads(lib, 1);
      System.setProperty(PATH_PROPERTY, lib);
      LOG.debug("segment_gemm CPU path: OpenBLAS from {} with {} thread(s) a call", lib, threads);
    } catch (IOException | RuntimeException | LinkageError e) {
      LOG.warn("segment_gemm CPU path: the bundled OpenBLAS could not be loaded ({}); netlib "
          + "chooses its BLAS", e.toString());
    }
  }
}
