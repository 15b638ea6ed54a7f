"""sgemm_group_rows (the Spark UDF's group phase) and sgemm_timer against a plain-Python
reference of the header's rules: which rows are computed, their stable order by adapter, each
one's result row, the result's offsets and validity bits, the rows per adapter and the first bad
row. Exact (integers only)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: the GPU tests need it")

import sgemm  # noqa: E402
from sgemm import SgemmError, Status  # noqa: E402

if not torch.cuda.is_available():
    pytest.skip("no CUDA device visible to torch (torch.cuda.is_available() is False)",
                allow_module_level=True)

DEV = "cuda"


def reference(adapter, offsets, num_adapters, d_in, d_out, known, present, has_null):
    rows = len(adapter)
    computed = []
    first_bad = -1
    for r in range(rows):
        is_present = present is None or present[r] != 0
        is_known = (known is None or known[r] != 0) and 0 <= adapter[r] < num_adapters
        ok = (is_present and is_known and offsets[r + 1] - offsets[r] == d_in
              and (has_null is None or has_null[r] == 0))
        computed.append(ok)
        if is_present and not ok and first_bad < 0:
            first_bad = r
    rank = np.concatenate([[0], np.cumsum(computed)]).astype(np.int64)
    n = int(rank[-1])
    order = sorted((r for r in range(rows) if computed[r]), key=lambda r: (adapter[r], r))
    counts = np.zeros(num_adapters, dtype=np.int64)
    for r in order:
        counts[adapter[r]] += 1
    return dict(order=order, dest=[int(rank[r]) for r in order], out_offsets=rank * d_out,
                computed=computed, counts=counts, n=n, first_bad=first_bad)


def run_case(rows, num_adapters, d_in, d_out, seed, masks=True):
    rng = np.random.default_rng(seed)
    adapter = rng.integers(-1, num_adapters + 1, rows).astype(np.int32)  # some out of range
    lens = np.where(rng.random(rows) < 0.9, d_in, rng.integers(0, 2 * d_in + 1, rows))
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32) + 5  # need not start at 0
    known = (rng.random(rows) < 0.95).astype(np.uint8) if masks else None
    present = (rng.random(rows) < 0.9).astype(np.uint8) if masks else None
    has_null = (rng.random(rows) < 0.03).astype(np.uint8) if masks else None
    if not masks:
        adapter = np.clip(adapter, 0, num_adapters - 1)
        offsets = (np.arange(rows + 1) * d_in + 5).astype(np.int32)
    t = lambda a: None if a is None else torch.from_numpy(a).to(DEV)  # noqa: E731
    order, dest, out_offsets, valid, summary = sgemm.group_rows(
        t(adapter), t(offsets), num_adapters, d_in, d_out, known=t(known), present=t(present),
        has_null=t(has_null))
    ref = reference(adapter, offsets, num_adapters, d_in, d_out, known, present, has_null)
    n = ref["n"]
    s = summary.cpu().numpy()
    assert s[num_adapters] == n
    assert s[num_adapters + 1] == ref["first_bad"]
    np.testing.assert_array_equal(s[:num_adapters], ref["counts"])
    np.testing.assert_array_equal(order.cpu().numpy()[:n], ref["order"])
    np.testing.assert_array_equal(dest.cpu().numpy()[:n], ref["dest"])
    np.testing.assert_array_equal(out_offsets.cpu().numpy(), ref["out_offsets"])
    words = valid.cpu().numpy().view(np.uint32)
    bits = [(int(words[r // 32]) >> (r % 32)) & 1 for r in range(rows)]
    assert bits == [int(c) for c in ref["computed"]]
    if rows % 32:  # bits past the last row are zero in the last word
        assert int(words[(rows - 1) // 32]) >> (rows % 32) == 0
    return ref


@pytest.mark.parametrize("rows,num_adapters,seed", [(1, 1, 1), (31, 3, 2), (1000, 37, 3),
                                                    (4099, 100, 4), (70001, 10000, 5)])
def test_group_rows_matches_the_reference(rows, num_adapters, seed):
    ref = run_case(rows, num_adapters, d_in=8, d_out=3, seed=seed)
    if rows >= 1000:  # the random data has every kind of row
        assert 0 < ref["n"] < rows and ref["first_bad"] >= 0


def test_group_rows_without_masks_computes_every_row():
    ref = run_case(5000, 7, d_in=4, d_out=16, seed=6, masks=False)
    assert ref["n"] == 5000 and ref["first_bad"] == -1


def test_group_rows_of_an_empty_batch():
    empty = torch.zeros(0, dtype=torch.int32, device=DEV)
    offsets = torch.zeros(1, dtype=torch.int32, device=DEV)
    _, _, out_offsets, _, summary = sgemm.group_rows(empty, offsets, 4, 8, 8)
    assert out_offsets.cpu().tolist() == [0]
    assert summary.cpu().tolist() == [0, 0, 0, 0, 0, -1]


def test_group_rows_rejects_bad_sizes_with_a_message():
    a = torch.zeros(4, dtype=torch.int32, device=DEV)
    o = torch.arange(5, dtype=torch.int32, device=DEV)
    with pytest.raises(SgemmError) as e:
        sgemm.group_rows(a, o, 0, 1, 1)
    assert e.value.status == Status.INVALID_ARGUMENT and "num_adapters" in str(e.value)


def test_timer_measures_between_marks_and_needs_every_mark():
    t = sgemm.Timer(3)
    try:
        with pytest.raises(SgemmError) as e:
            t.read()
        assert "not every mark" in str(e.value)
        x = torch.randn(2048, 2048, device=DEV)
        t.mark(0)
        y = x @ x
        t.mark(1)
        t.mark(2)
        ms = t.read()
        assert len(ms) == 2 and ms[0] > 0 and ms[1] >= 0
        del y
    finally:
        t.close()
