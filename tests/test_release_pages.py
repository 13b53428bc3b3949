"""QcmFile.release_pages: dropping resident pages of the read-only map never changes the data."""

from __future__ import annotations

import numpy as np

from qcore.format import load_tensors, save_tensors
from qcore.reference.tensor import QuantizedTensor


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_data_reads_the_same_after_release(tmp_path):
    rng = np.random.default_rng(11)
    big = rng.integers(-128, 128, (2048, 2048)).astype(np.int8)  # 4 MiB
    small = rng.standard_normal((3, 5)).astype(np.float32)
    q = QuantizedTensor(big, np.float32(0.5), np.int8(3), "int8")
    path = tmp_path / "m.qcm"
    save_tensors(path, {"big": q, "small": small})
    with load_tensors(path) as f:  # verify() reads every byte and releases as it goes
        view = f["big"].data
        f.release_pages()
        np.testing.assert_array_equal(view, big, strict=True)
        np.testing.assert_array_equal(f["small"], small, strict=True)
        before = _rss_kib()
        f.release_pages(f.info("big").offset, f.info("big").nbytes)
        after = _rss_kib()
        assert after <= before  # the 4 MiB left the resident set (advice: never more)
        np.testing.assert_array_equal(f["big"].data, big, strict=True)
        f.release_pages(10**12)  # past the end: nothing to do
    f.release_pages()  # closed: no-op


def test_runtime_releases_packed_weights_without_changing_them(tmp_path):
    from qcore.runtime.kernels import release_mapped_pages

    rng = np.random.default_rng(12)
    w = rng.integers(-128, 128, (1024, 64)).astype(np.int8)
    path = tmp_path / "w.qcm"
    save_tensors(path, {"w": QuantizedTensor(w, np.float32(0.1), np.int8(0), "int8")})
    with load_tensors(path) as f:
        view = f["w"].data
        assert release_mapped_pages(view)
        np.testing.assert_array_equal(view, w, strict=True)
        assert release_mapped_pages(view[:1, :1]) is False  # less than a page: nothing released
    assert release_mapped_pages(w) is False  # not a mapped array
