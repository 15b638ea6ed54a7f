package com.sparksegmentgemm.nativelib;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;

/**
 * Loads libsegmentgemm.so once per JVM, from the jar.
 *
 * <p>Loading is lazy (the first GPU use calls {@link #ensureLoaded()}), never in a static block
 * of a class the driver touches: a Spark driver may have no CUDA at all. The library links the
 * CUDA runtime statically and needs nothing but libc and libstdc++ to load; whether a driver and
 * a GPU are there is a separate question, answered by {@link Gpu}. A failed load is remembered
 * and rethrown, with its cause, on every later use.
 */
public final class NativeLib {
  static final String LIBRARY = "libsegmentgemm.so";

  private static final Object LOCK = new Object();
  private static boolean loaded;
  private static UnsatisfiedLinkError loadError;

  private NativeLib() {}

  /** Loads the library if not done yet; throws the (remembered) load error otherwise. */
  public static void ensureLoaded() {
    synchronized (LOCK) {
      if (loaded) return;
      if (loadError == null) {
        try {
          load();
          loaded = true;
          return;
        } catch (IOException | UnsatisfiedLinkError | SecurityException e) {
          UnsatisfiedLinkError err = new UnsatisfiedLinkError(
              "cannot load the Spark Segment GEMM native library (" + resourcePath() + "): " + e);
          err.initCause(e);
          loadError = err;
        }
      }
      throw loadError;
    }
  }

  /** The path of the library inside the jar: {@code <package>/<os>/<arch>/libsegmentgemm.so}. */
  static String resourcePath() {
    return "/com/sparksegmentgemm/nativelib/" + os() + "/" + arch() + "/" + LIBRARY;
  }

  private static String os() {
    String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
    return os.startsWith("linux") ? "linux" : os.replace(' ', '_');
  }

  private static String arch() {
    String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
    return arch.equals("x86_64") ? "amd64" : arch;
  }

  private static void load() throws IOException {
    String path = resourcePath();
    try (InputStream in = NativeLib.class.getResourceAsStream(path)) {
      if (in == null) {
        throw new UnsatisfiedLinkError("the jar has no native library for this platform at " + path
            + " (built for linux/amd64 only)");
      }
      // A fresh temp file per JVM: executors sharing a host must not overwrite each other's copy.
      Path tmp = Files.createTempFile("segmentgemm-", ".so");
      try {
        Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
        System.load(tmp.toAbsolutePath().toString());
      } finally {
        // Once loaded the mapping stays valid; the file itself is no longer needed.
        Files.deleteIfExists(tmp);
      }
    }
  }
}
