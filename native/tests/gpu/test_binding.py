"""The ctypes binding against the header and the built library; needs neither a GPU nor torch.

Runs anywhere the library is built (and on the GPU machine too, as part of run.sh):
  - the ctypes structs have the header's field offsets and sizes (compiled with the system C
    compiler; skipped if there is none),
  - the library loads, has a version, answers sgemm_workspace_size without a device,
  - without a usable GPU, sgemm_device_count says NO_DEVICE and sgemm_create fails cleanly.
"""

import ctypes
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import sgemm


def _compiler():
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


STRUCTS = {
    "sgemm_run_args": sgemm.RunArgs,
    "sgemm_device_info": sgemm.DeviceInfo,
    "sgemm_workspace_sizes": sgemm.WorkspaceSizes,
    "sgemm_bmm_fp8_args": sgemm.BmmFp8Args,
}


def test_struct_layout_matches_header():
    cc = _compiler()
    if cc is None:
        pytest.skip("no C compiler to read the header's layout")
    lines = ['#include <stdio.h>', '#include <stddef.h>', f'#include "{sgemm.HEADER}"',
             'int main(void) {']
    for cname, cls in STRUCTS.items():
        lines.append(f'  printf("{cname} sizeof %zu\\n", sizeof({cname}));')
        for field, _ in cls._fields_:
            lines.append(f'  printf("{cname} {field} %zu %zu\\n", offsetof({cname}, {field}), '
                         f'sizeof((({cname}*)0)->{field}));')
    lines += ['  printf("enum sizeof %zu\\n", sizeof(sgemm_dtype));', '  return 0;', '}']
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "layout.c"), os.path.join(d, "layout")
        with open(src, "w") as f:
            f.write("\n".join(lines) + "\n")
        subprocess.run([cc, "-std=c11", "-o", exe, src], check=True, capture_output=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    got = {}
    for line in out.splitlines():
        parts = line.split()
        got[(parts[0], parts[1])] = tuple(int(p) for p in parts[2:])
    assert got[("enum", "sizeof")] == (ctypes.sizeof(ctypes.c_int),)
    for cname, cls in STRUCTS.items():
        assert got[(cname, "sizeof")] == (ctypes.sizeof(cls),), cname
        for field, ctype in cls._fields_:
            desc = getattr(cls, field)
            assert got[(cname, field)] == (desc.offset, desc.size), f"{cname}.{field}"
    # and nothing in the header that the binding lacks
    header = sgemm.HEADER.read_text()
    for cname, cls in STRUCTS.items():
        body = header.split(f"typedef struct {cname} {{", 1)[1].split("}", 1)[0]
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        declared = [d.split()[-1].lstrip("*").split("[")[0]
                    for d in body.split(";") if d.strip()]
        assert declared == [f for f, _ in cls._fields_], cname


def test_enums_match_header():
    header = sgemm.HEADER.read_text()
    for prefix, enum in (("SGEMM_", sgemm.Status), ("SGEMM_", sgemm.DType),
                         ("SGEMM_BACKEND_", sgemm.Backend)):
        for member in enum:
            assert f"{prefix}{member.name} = {int(member)}" in header, f"{prefix}{member.name}"


def test_library_loads_and_answers_without_a_device():
    v = sgemm.version()
    assert v and v[0].isdigit(), v
    args = sgemm.RunArgs(int(sgemm.DType.BFLOAT16), None, 1_000_000, 256, 256, None, 8, 0, None,
                         100_000, None, None, 1)
    sizes = sgemm.workspace_size(args)
    assert sizes.int_bytes >= 2 * 100_001 * 8, sizes
    assert sizes.float_bytes_coalesced >= sizes.float_bytes, sizes
    bad = sgemm.RunArgs(int(sgemm.DType.BFLOAT16), None, 0, 8, 8, None, 1, 0, None, -1,
                        None, None, None)
    with pytest.raises(sgemm.SgemmError) as e:
        sgemm.workspace_size(bad)
    assert e.value.status == sgemm.Status.INVALID_ARGUMENT
    assert "batch_size" in e.value.message


def test_bmm_fp8_workspace_size_reads_sizes_only():
    # No pointers (as the JNI layer asks before allocating): sizes and dtypes are all it reads.
    args = sgemm.BmmFp8Args(int(sgemm.DType.FLOAT8_E4M3), int(sgemm.DType.FLOAT8_E5M2),
                            int(sgemm.DType.BFLOAT16), None, None, None, None, None, 8, 4096,
                            4096, 4096)
    need = ctypes.c_size_t(0)
    assert sgemm.lib().sgemm_bmm_fp8_workspace_size(ctypes.byref(args), ctypes.byref(need)) == 0, \
        sgemm.last_error()
    assert need.value >= 4 << 20
    args.k = 40
    assert sgemm.lib().sgemm_bmm_fp8_workspace_size(ctypes.byref(args), ctypes.byref(need)) \
        == sgemm.Status.INVALID_ARGUMENT
    assert "k must be a multiple of 16" in sgemm.last_error()


def test_null_handle_is_an_error_not_a_crash():
    L = sgemm.lib()
    assert L.sgemm_destroy(None) == sgemm.Status.OK
    args = sgemm.RunArgs()
    buf = ctypes.create_string_buffer(64)
    for status in (L.sgemm_check(None, None), L.sgemm_run(None, ctypes.byref(args), None),
                   L.sgemm_describe_plan(None, ctypes.byref(args), buf, len(buf)),
                   L.sgemm_reset_workspace(None, None, 0, None, 0),
                   L.sgemm_bmm_fp8(None, ctypes.byref(sgemm.BmmFp8Args()), None)):
        assert status == sgemm.Status.INVALID_ARGUMENT
        assert sgemm.last_error() == "handle is null"


def test_device_count_answers():
    status, count, message = sgemm.device_count()
    if status == sgemm.Status.OK:
        assert count > 0
        info = sgemm.device_query(0)
        assert info.name and info.major >= 7
    else:
        assert status == sgemm.Status.NO_DEVICE, message
        assert count == 0 and message
        h = ctypes.c_void_p()
        st = sgemm.lib().sgemm_create(ctypes.byref(h), 0, None, 0, None, 0)
        assert st != sgemm.Status.OK and not h.value
