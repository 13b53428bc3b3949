"""Both readers reject every file of the corrupt catalogue with that rule's error class."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from qcore.errors import FormatError
from qcore.format import errors as E
from qcore.format import load_tensors
from qcore.format.native import CReader

_spec = importlib.util.spec_from_file_location(
    "make_corrupt_catalogue", Path(__file__).with_name("make_corrupt_catalogue.py"))
catalogue_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(catalogue_module)

CATALOGUE = catalogue_module.catalogue()
VALID = catalogue_module.valid_files()
RULE_CLASSES = {cls.rule: cls for cls in E.STATUS_ERRORS.values()}
VALUE_RULES = {"tensor-checksum", "padding", "scale-value", "zero-point-range"}


@pytest.fixture(scope="module")
def catalogue_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("catalogue")
    catalogue_module.main([str(directory), "--valid"])
    return directory


def test_catalogue_covers_every_rule():
    covered = {catalogue_module.rule_of(name) for name in CATALOGUE}
    assert covered == set(RULE_CLASSES)


def test_status_codes_match_error_classes():
    from qcore._native import lib

    for cls in E.STATUS_ERRORS.values():
        constant = "QC_E_FORMAT_" + cls.rule.upper().replace("-", "_")
        aliases = {"header-size": "QC_E_FORMAT_HEADER_TOO_LARGE"}
        assert getattr(lib, aliases.get(cls.rule, constant)) == cls.status


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_python_reader_rejects(catalogue_dir, name):
    cls = RULE_CLASSES[catalogue_module.rule_of(name)]
    with pytest.raises(cls) as info:
        load_tensors(catalogue_dir / name)
    assert type(info.value) is cls
    assert f"rule {cls.rule}" in str(info.value)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_c_reader_rejects(name):
    cls = RULE_CLASSES[catalogue_module.rule_of(name)]
    with pytest.raises(cls) as info:
        CReader(CATALOGUE[name])
    assert type(info.value) is cls


@pytest.mark.parametrize("name", sorted(n for n in CATALOGUE if catalogue_module.rule_of(n) in VALUE_RULES))
def test_value_rules_are_not_checked_without_verify(catalogue_dir, name):
    """verify=False opens files whose only fault is in tensor values or padding ..."""
    with load_tensors(catalogue_dir / name, verify=False) as f:
        assert set(f) in ({"t1", "t2", "t3", "t4", "t5"}, set(catalogue_module.v2_tensors()))
        rule = catalogue_module.rule_of(name)
        if rule in ("scale-value", "zero-point-range"):
            # ... but a quantized tensor's parameters are checked when it is accessed.
            with pytest.raises(RULE_CLASSES[rule]):
                for key in f:
                    f[key]
    CReader(CATALOGUE[name], verify=False)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_seed_files_open_in_both_readers(catalogue_dir, name):
    with load_tensors(catalogue_dir / name) as f:
        for key in f:
            f[key]
        reader = CReader(VALID[name])
        assert reader.metadata() == f.metadata
        assert reader.tensor_count == len(f.infos())


def test_errors_are_format_errors_and_value_errors():
    for cls in E.STATUS_ERRORS.values():
        assert issubclass(cls, FormatError) and issubclass(cls, ValueError)
    assert issubclass(E.TensorChecksumError, E.ChecksumError)
    assert issubclass(E.HeaderChecksumError, E.ChecksumError)


def test_error_names_the_tensor(catalogue_dir):
    with pytest.raises(E.BadScaleError, match=r"rule scale-value \(tensor 't2'\): scale\[1\] = nan"):
        load_tensors(catalogue_dir / "scale-value.nan.qcm")
    with pytest.raises(E.MisalignedError, match=r"tensor 't2'.*offset 136"):
        load_tensors(catalogue_dir / "misaligned.qcm")
