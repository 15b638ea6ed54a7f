package com.sparksegmentgemm.spark;

import java.net.URI;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.security.AccessControlException;

/**
 * The local file system under the scheme {@code denied:}, where every listing and read fails as
 * HDFS fails them for a folder the user may not read (core-site.xml in the test resources
 * registers it): the bad-input suite's "adapters path not readable", which chmod cannot give a
 * root user.
 */
public class DeniedFileSystem extends RawLocalFileSystem {
  @Override
  public URI getUri() {
    return URI.create("denied:///");
  }

  @Override
  public String getScheme() {
    return "denied";
  }

  @Override
  public FileStatus[] listStatus(Path f) throws AccessControlException {
    throw denied(f);
  }

  @Override
  public FSDataInputStream open(Path f, int bufferSize) throws AccessControlException {
    throw denied(f);
  }

  private static AccessControlException denied(Path f) {
    return new AccessControlException("Permission denied: access=READ, path=" + f);
  }
}
