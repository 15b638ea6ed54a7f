// JNI bindings for com.sparksegmentgemm.nativelib.SegmentGemmNative: a thin layer over the C API.
// Every function has one shape: its body runs in guarded(), calls the C API, and on a non-OK
// status throws SegmentGemmException.fromNative(status, sgemm_last_error(), sgemm_last_cuda_error())
// (a SegmentGemmFatalException for SGEMM_CUDA_FATAL). A C++ exception never reaches the JVM:
// guarded() turns it into a SegmentGemmException (INTERNAL_ERROR). Device pointers and streams
// travel as longs.
#include <dlfcn.h>
#include <jni.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "segment_gemm.h"
#include "segment_gemm_rows.h"

namespace {

constexpr const char* kExceptionClass = "com/sparksegmentgemm/nativelib/SegmentGemmException";

void throw_java(JNIEnv* env, int status, const char* message, int cuda_error) {
  if (env->ExceptionCheck()) return;  // keep the first exception
  jclass cls = env->FindClass(kExceptionClass);
  if (cls == nullptr) return;  // NoClassDefFoundError is pending
  jmethodID factory = env->GetStaticMethodID(
      cls, "fromNative", "(ILjava/lang/String;I)Lcom/sparksegmentgemm/nativelib/SegmentGemmException;");
  if (factory == nullptr) return;
  jstring msg = env->NewStringUTF(message);
  if (msg == nullptr) return;
  auto ex = static_cast<jthrowable>(env->CallStaticObjectMethod(
      cls, factory, static_cast<jint>(status), msg, static_cast<jint>(cuda_error)));
  if (ex != nullptr && !env->ExceptionCheck()) env->Throw(ex);
}

// True when status is OK; otherwise a Java exception is pending.
bool ok(JNIEnv* env, sgemm_status status) {
  if (status == SGEMM_OK) return true;
  throw_java(env, status, sgemm_last_error(), sgemm_last_cuda_error());
  return false;
}

// Runs body() for the JNI function `function`; a C++ exception it throws (the C API throws none,
// but the JNI glue itself may) becomes a pending SegmentGemmException with status
// SGEMM_INTERNAL_ERROR, and the function returns a zero value the JVM ignores.
template <class Body>
auto guarded(JNIEnv* env, const char* function, Body&& body) noexcept -> decltype(body()) {
  using Result = decltype(body());
  char message[512];
  try {
    return std::forward<Body>(body)();
  } catch (const std::bad_alloc& e) {
    std::snprintf(message, sizeof(message), "%s: out of host memory: %s", function, e.what());
  } catch (const std::exception& e) {
    std::snprintf(message, sizeof(message), "%s: C++ exception: %s", function, e.what());
  } catch (...) {
    std::snprintf(message, sizeof(message), "%s: unknown C++ exception", function);
  }
  throw_java(env, SGEMM_INTERNAL_ERROR, message, 0);
  if constexpr (!std::is_void_v<Result>) return Result{};
}

template <typename T>
T* ptr(jlong address) { return reinterpret_cast<T*>(static_cast<uintptr_t>(address)); }

sgemm_run_args run_args(jint dtype, jlong x, jlong x_rows, jlong d_in, jlong d_out,
                        jlong weights, jlong num_weights, jboolean weight_column_major, jlong y,
                        jlong batch_size, jlong seg_lens, jlong seg_indptr,
                        jlong weight_indices, jlong weight_scales) {
  sgemm_run_args args{};
  args.dtype = static_cast<sgemm_dtype>(dtype);
  args.x = ptr<const void>(x);
  args.x_rows = x_rows;
  args.d_in = d_in;
  args.d_out = d_out;
  args.weights = ptr<const void>(weights);
  args.num_weights = num_weights;
  args.weight_column_major = weight_column_major ? 1 : 0;
  args.y = ptr<void>(y);
  args.batch_size = batch_size;
  args.seg_lens = ptr<const int64_t>(seg_lens);
  args.seg_indptr = ptr<const int64_t>(seg_indptr);
  args.weight_indices = ptr<const int64_t>(weight_indices);
  args.weight_scales = ptr<const float>(weight_scales);
  return args;
}

sgemm_bmm_fp8_args bmm_args(jint a_dtype, jlong a, jint b_dtype, jlong b, jlong a_scale,
                            jlong b_scale, jint out_dtype, jlong d, jlong batch, jlong m, jlong n,
                            jlong k) {
  sgemm_bmm_fp8_args args{};
  args.a_dtype = static_cast<sgemm_dtype>(a_dtype);
  args.b_dtype = static_cast<sgemm_dtype>(b_dtype);
  args.out_dtype = static_cast<sgemm_dtype>(out_dtype);
  args.a = ptr<const void>(a);
  args.b = ptr<const void>(b);
  args.a_scale = ptr<const float>(a_scale);
  args.b_scale = ptr<const float>(b_scale);
  args.d = ptr<void>(d);
  args.batch = batch;
  args.m = m;
  args.n = n;
  args.k = k;
  return args;
}

}  // namespace

extern "C" {

JNIEXPORT jstring JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_version0(JNIEnv* env, jclass) {
  return guarded(env, __func__, [&]() -> jstring {
    return env->NewStringUTF(sgemm_version());
  });
}

JNIEXPORT jint JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_deviceCount0(JNIEnv* env, jclass) {
  return guarded(env, __func__, [&]() -> jint {
    int count = 0;
    return ok(env, sgemm_device_count(&count)) ? count : 0;
  });
}

JNIEXPORT jobject JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_deviceQuery0(JNIEnv* env, jclass, jint device) {
  return guarded(env, __func__, [&]() -> jobject {
    sgemm_device_info info;
    if (!ok(env, sgemm_device_query(device, &info))) return nullptr;
    jclass cls = env->FindClass("com/sparksegmentgemm/nativelib/DeviceInfo");
    if (cls == nullptr) return nullptr;
    jmethodID ctor = env->GetMethodID(cls, "<init>", "(ILjava/lang/String;IIIJII)V");
    if (ctor == nullptr) return nullptr;
    jstring name = env->NewStringUTF(info.name);
    if (name == nullptr) return nullptr;
    return env->NewObject(cls, ctor, device, name, info.major, info.minor,
                          info.multiprocessor_count, static_cast<jlong>(info.total_memory_bytes),
                          info.driver_version, info.runtime_version);
  });
}

JNIEXPORT jlongArray JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_workspaceSize0(
    JNIEnv* env, jclass, jint dtype, jlong x_rows, jlong d_in, jlong d_out, jlong num_weights,
    jlong batch_size, jboolean has_weight_indices, jboolean fp8_weights) {
  return guarded(env, __func__, [&]() -> jlongArray {
    sgemm_run_args args{};
    args.dtype = static_cast<sgemm_dtype>(dtype);
    args.x_rows = x_rows;
    args.d_in = d_in;
    args.d_out = d_out;
    args.num_weights = num_weights;
    args.batch_size = batch_size;
    // Only null-ness is read: any non-null address says "weight indices are given".
    static const int64_t kPresent = 0;
    args.weight_indices = has_weight_indices ? &kPresent : nullptr;
    static const float kScale = 0;
    args.weight_scales = fp8_weights ? &kScale : nullptr;
    sgemm_workspace_sizes sizes{};
    if (!ok(env, sgemm_workspace_size(&args, &sizes))) return nullptr;
    jlongArray result = env->NewLongArray(3);
    if (result == nullptr) return nullptr;
    const jlong values[3] = {static_cast<jlong>(sizes.float_bytes),
                             static_cast<jlong>(sizes.float_bytes_coalesced),
                             static_cast<jlong>(sizes.int_bytes)};
    env->SetLongArrayRegion(result, 0, 3, values);
    return result;
  });
}

JNIEXPORT jlong JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_create0(JNIEnv* env, jclass, jint backend,
                                                            jlong float_ws, jlong float_bytes,
                                                            jlong int_ws, jlong int_bytes) {
  return guarded(env, __func__, [&]() -> jlong {
    sgemm_handle* handle = nullptr;
    if (!ok(env, sgemm_create(&handle, static_cast<sgemm_backend>(backend), ptr<void>(float_ws),
                              static_cast<size_t>(float_bytes), ptr<void>(int_ws),
                              static_cast<size_t>(int_bytes)))) {
      return 0;
    }
    return static_cast<jlong>(reinterpret_cast<uintptr_t>(handle));
  });
}

JNIEXPORT void JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_resetWorkspace0(JNIEnv* env, jclass,
                                                                    jlong handle, jlong float_ws,
                                                                    jlong float_bytes,
                                                                    jlong int_ws, jlong int_bytes) {
  return guarded(env, __func__, [&]() -> void {
    ok(env, sgemm_reset_workspace(ptr<sgemm_handle>(handle), ptr<void>(float_ws),
                                  static_cast<size_t>(float_bytes), ptr<void>(int_ws),
                                  static_cast<size_t>(int_bytes)));
  });
}

JNIEXPORT void JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_destroy0(JNIEnv* env, jclass, jlong handle) {
  return guarded(env, __func__, [&]() -> void {
    ok(env, sgemm_destroy(ptr<sgemm_handle>(handle)));
  });
}

JNIEXPORT void JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_run0(
    JNIEnv* env, jclass, jlong handle, jint dtype, jlong x, jlong x_rows, jlong d_in, jlong d_out,
    jlong weights, jlong num_weights, jboolean weight_column_major, jlong y, jlong batch_size,
    jlong seg_lens, jlong seg_indptr, jlong weight_indices, jlong weight_scales, jlong stream) {
  return guarded(env, __func__, [&]() -> void {
    const sgemm_run_args args = run_args(dtype, x, x_rows, d_in, d_out, weights, num_weights,
                                         weight_column_major, y, batch_size, seg_lens, seg_indptr,
                                         weight_indices, weight_scales);
    ok(env, sgemm_run(ptr<sgemm_handle>(handle), &args, ptr<void>(stream)));
  });
}

JNIEXPORT jstring JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_describePlan0(
    JNIEnv* env, jclass, jlong handle, jint dtype, jlong x, jlong x_rows, jlong d_in, jlong d_out,
    jlong weights, jlong num_weights, jboolean weight_column_major, jlong y, jlong batch_size,
    jlong seg_lens, jlong seg_indptr, jlong weight_indices, jlong weight_scales) {
  return guarded(env, __func__, [&]() -> jstring {
    const sgemm_run_args args = run_args(dtype, x, x_rows, d_in, d_out, weights, num_weights,
                                         weight_column_major, y, batch_size, seg_lens, seg_indptr,
                                         weight_indices, weight_scales);
    char buf[256];
    if (!ok(env, sgemm_describe_plan(ptr<sgemm_handle>(handle), &args, buf, sizeof(buf)))) {
      return nullptr;
    }
    return env->NewStringUTF(buf);
  });
}

JNIEXPORT jlong JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_bmmFp8WorkspaceSize0(
    JNIEnv* env, jclass, jint a_dtype, jint b_dtype, jint out_dtype, jlong batch, jlong m, jlong n,
    jlong k) {
  return guarded(env, __func__, [&]() -> jlong {
    const sgemm_bmm_fp8_args args = bmm_args(a_dtype, 0, b_dtype, 0, 0, 0, out_dtype, 0, batch,
                                             m, n, k);
    size_t bytes = 0;
    if (!ok(env, sgemm_bmm_fp8_workspace_size(&args, &bytes))) return 0;
    return static_cast<jlong>(bytes);
  });
}

JNIEXPORT void JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_bmmFp80(
    JNIEnv* env, jclass, jlong handle, jint a_dtype, jlong a, jint b_dtype, jlong b, jlong a_scale,
    jlong b_scale, jint out_dtype, jlong d, jlong batch, jlong m, jlong n, jlong k, jlong stream) {
  return guarded(env, __func__, [&]() -> void {
    const sgemm_bmm_fp8_args args = bmm_args(a_dtype, a, b_dtype, b, a_scale, b_scale, out_dtype,
                                             d, batch, m, n, k);
    ok(env, sgemm_bmm_fp8(ptr<sgemm_handle>(handle), &args, ptr<void>(stream)));
  });
}

JNIEXPORT void JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_check0(JNIEnv* env, jclass, jlong handle,
                                                           jlong stream) {
  return guarded(env, __func__, [&]() -> void {
    ok(env, sgemm_check(ptr<sgemm_handle>(handle), ptr<void>(stream)));
  });
}

JNIEXPORT void JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_gatherFloatRows0(
    JNIEnv* env, jclass, jlong values, jlong offsets, jlong rows, jlong n, jlong d, jint dtype,
    jlong dst, jlong stream) {
  return guarded(env, __func__, [&]() -> void {
    ok(env, sgemm_gather_float_rows(ptr<const float>(values), ptr<const int32_t>(offsets),
                                    ptr<const int32_t>(rows), n, d, static_cast<sgemm_dtype>(dtype),
                                    ptr<void>(dst), ptr<void>(stream)));
  });
}

JNIEXPORT void JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_scatterRowsToFloat0(
    JNIEnv* env, jclass, jlong src, jint dtype, jlong dest_rows, jlong n, jlong d, jlong dst,
    jlong stream) {
  return guarded(env, __func__, [&]() -> void {
    ok(env, sgemm_scatter_rows_to_float(ptr<const void>(src), static_cast<sgemm_dtype>(dtype),
                                        ptr<const int32_t>(dest_rows), n, d, ptr<float>(dst),
                                        ptr<void>(stream)));
  });
}

JNIEXPORT jlong JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_groupRowsWorkspaceSize0(
    JNIEnv* env, jclass, jlong rows, jint num_adapters) {
  return guarded(env, __func__, [&]() -> jlong {
    size_t bytes = 0;
    return ok(env, sgemm_group_rows_workspace_size(rows, num_adapters, &bytes))
               ? static_cast<jlong>(bytes) : 0;
  });
}

JNIEXPORT void JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_groupRows0(
    JNIEnv* env, jclass, jlong adapter, jlong known, jlong present, jlong offsets, jlong has_null,
    jlong rows, jlong d_in, jint num_adapters, jlong d_out, jlong order, jlong dest,
    jlong out_offsets, jlong valid, jlong summary, jlong workspace, jlong workspace_bytes,
    jlong stream) {
  return guarded(env, __func__, [&]() -> void {
    ok(env, sgemm_group_rows(ptr<const int32_t>(adapter), ptr<const uint8_t>(known),
                             ptr<const uint8_t>(present), ptr<const int32_t>(offsets),
                             ptr<const uint8_t>(has_null), rows, d_in, num_adapters, d_out,
                             ptr<int32_t>(order), ptr<int32_t>(dest), ptr<int32_t>(out_offsets),
                             ptr<uint32_t>(valid), ptr<int32_t>(summary), ptr<void>(workspace),
                             static_cast<size_t>(workspace_bytes), ptr<void>(stream)));
  });
}

JNIEXPORT jlong JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_timerCreate0(JNIEnv* env, jclass,
                                                                   jint marks) {
  return guarded(env, __func__, [&]() -> jlong {
    sgemm_timer* timer = nullptr;
    return ok(env, sgemm_timer_create(&timer, marks))
               ? static_cast<jlong>(reinterpret_cast<uintptr_t>(timer)) : 0;
  });
}

JNIEXPORT void JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_timerMark0(JNIEnv* env, jclass,
                                                                 jlong timer, jint mark,
                                                                 jlong stream) {
  return guarded(env, __func__, [&]() -> void {
    ok(env, sgemm_timer_mark(ptr<sgemm_timer>(timer), mark, ptr<void>(stream)));
  });
}

JNIEXPORT void JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_timerRead0(JNIEnv* env, jclass,
                                                                 jlong timer, jfloatArray ms) {
  return guarded(env, __func__, [&]() -> void {
    const jsize n = env->GetArrayLength(ms);
    float values[64];
    if (n > 64) {
      throw_java(env, SGEMM_INVALID_ARGUMENT, "timerRead: more than 64 intervals", 0);
      return;
    }
    if (!ok(env, sgemm_timer_read(ptr<sgemm_timer>(timer), values))) return;
    env->SetFloatArrayRegion(ms, 0, n, values);
  });
}

JNIEXPORT void JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_timerDestroy0(JNIEnv* env, jclass,
                                                                    jlong timer) {
  return guarded(env, __func__, [&]() -> void {
    ok(env, sgemm_timer_destroy(ptr<sgemm_timer>(timer)));
  });
}

// Not the C API: loading OpenBLAS for the CPU path (com.sparksegmentgemm.CpuBlas) and limiting it
// to `threads` threads per call before netlib's JNI BLAS opens the same file (dlopen returns the
// same handle). Spark runs one task per core, so an OpenBLAS that spreads every call over all
// cores would oversubscribe them; its OPENBLAS_NUM_THREADS is read from the environment, which a
// JVM cannot set. Returns the thread count OpenBLAS reports afterwards.
JNIEXPORT jint JNICALL
Java_com_sparksegmentgemm_nativelib_SegmentGemmNative_openBlasThreads0(JNIEnv* env, jclass,
                                                                       jstring path,
                                                                       jint threads) {
  return guarded(env, __func__, [&]() -> jint {
    const char* file = env->GetStringUTFChars(path, nullptr);
    if (file == nullptr) return 0;  // OutOfMemoryError is pending
    void* lib = dlopen(file, RTLD_NOW | RTLD_GLOBAL);
    env->ReleaseStringUTFChars(path, file);
    if (lib == nullptr) {
      const char* why = dlerror();
      throw_java(env, SGEMM_INVALID_ARGUMENT, why != nullptr ? why : "dlopen failed", 0);
      return 0;
    }
    auto set = reinterpret_cast<void (*)(int)>(dlsym(lib, "openblas_set_num_threads"));
    auto get = reinterpret_cast<int (*)()>(dlsym(lib, "openblas_get_num_threads"));
    if (set == nullptr || get == nullptr) {
      throw_java(env, SGEMM_INVALID_ARGUMENT, "not OpenBLAS: no openblas_set_num_threads", 0);
      return 0;
    }
    set(threads);
    return get();  // the library stays loaded, for netlib
  });
}

}  // extern "C"
