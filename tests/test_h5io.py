"""The HDF5 plumbing: the one attribute decoder, params, atomic outputs."""
import h5py
import numpy as np
import pytest

from elscli.errors import ElscliError
from elscli.h5io import atomic_output, attr_str, decode_attr, file_format, read_attrs, read_params, write_root_attrs


def test_attributes_decode_to_plain_python(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        write_root_attrs(f, "elscli.test", 3, {"b": 1, "a": [1, 2]}, seed=np.int64(7), flag=True, name="x")
        f.attrs["fixed"] = np.bytes_(b"fixed-length")
        f.attrs["arr"] = np.arange(3)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        a = read_attrs(f)
        assert file_format(f) == "elscli.test" and read_params(f) == {"a": [1, 2], "b": 1}
        assert attr_str(f, "fixed") == "fixed-length" and attr_str(f, "missing", "dflt") == "dflt"
    assert a["schema_version"] == 3 and type(a["schema_version"]) is int
    assert a["seed"] == 7 and type(a["seed"]) is int and a["flag"] is True and a["name"] == "x"
    assert a["fixed"] == "fixed-length" and isinstance(a["arr"], np.ndarray)
    assert decode_attr(b"\xc3\xa9") == "é" and decode_attr(np.float32(0.5)) == 0.5


def test_params_that_are_not_json_read_as_empty(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.attrs["params"] = "{not json"
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert read_params(f) == {} and file_format(f) is None


def test_atomic_output_leaves_nothing_on_failure_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    with pytest.raises(ElscliError, match="exists"):
        with atomic_output(target):
            pass
    assert target.read_text() == "whole"
