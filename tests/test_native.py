"""The C core loads, matches the package version and maps statuses to exceptions."""

import pytest

import qcore
from qcore import _native


def test_c_version_matches_package():
    assert _native.ffi.string(_native.lib.qc_version()).decode() == qcore.__version__


def test_scalar_is_always_available():
    isas = _native.available_isas()
    assert isas[0] == "scalar"
    assert _native.default_isa() in isas


def test_status_strings_are_distinct():
    codes = [getattr(_native.lib, n) for n in dir(_native.lib) if n.startswith("QC_E_") and "FORMAT" not in n]
    strings = {_native.status_string(c) for c in codes}
    assert len(strings) == len(codes)
    assert _native.status_string(12345) == "unknown status"


@pytest.mark.parametrize(
    "status, cls",
    [
        (_native.lib.QC_E_SHAPE, qcore.ShapeError),
        (_native.lib.QC_E_DTYPE, qcore.DTypeError),
        (_native.lib.QC_E_UNSUPPORTED_ISA, qcore.UnsupportedISAError),
        (_native.lib.QC_E_FORMAT_FIRST, qcore.FormatError),
    ],
)
def test_check_raises_mapped_class(status, cls):
    with pytest.raises(cls, match="doing it"):
        _native.check(status, "doing it")
    _native.check(_native.lib.QC_OK, "fine")


def test_unknown_isa_and_bad_threads_rejected():
    with pytest.raises(qcore.UnsupportedISAError):
        _native.make_options(isa="sparc")
    with pytest.raises(qcore.QuantParamError):
        _native.make_options(num_threads=0)


def test_forced_isa_from_environment(monkeypatch):
    monkeypatch.setenv("QCORE_ISA", "scalar")
    assert _native.default_isa() == "scalar"
    monkeypatch.setenv("QCORE_ISA", "no-such-isa")
    with pytest.raises(qcore.UnsupportedISAError):
        _native.default_isa()
