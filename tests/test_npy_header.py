"""The one .npy header reader (pwes.data.npy_header): shape and dtype from the header alone for
files numpy writes as format 1.0, 2.0 and 3.0, alone or inside an .npz, and the two readers of
feature files that use it (the layout check and the dataset importers)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from pwes.datasets.common import DatasetImportError
from pwes.datasets.features import FeatureSource, inspect
from pwes.data.layout import LayoutError, load_feature_set
from pwes.data.npy_header import npy_header, npz_headers, read_header

VERSIONS = [(1, 0), (2, 0), (3, 0)]


def write_npy(path: Path, array: np.ndarray, version: tuple[int, int]) -> Path:
    with open(path, "wb") as handle:
        np.lib.format.write_array(handle, array, version=version)
    assert path.read_bytes()[6:8] == bytes(version)  # the file really is that version
    return path


def write_npz(path: Path, version: tuple[int, int], **arrays: np.ndarray) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w") as handle:
                np.lib.format.write_array(handle, array, version=version)
    return path


@pytest.mark.parametrize("version", VERSIONS)
def test_npy_and_npz_headers_of_every_version(tmp_path: Path, version: tuple[int, int]) -> None:
    path = write_npy(tmp_path / "a.npy", np.zeros((5, 3), np.float32), version)
    assert npy_header(path) == ((5, 3), np.dtype(np.float32))
    npz = write_npz(tmp_path / "b.npz", version, rgb=np.zeros((1, 7, 2), np.float64), flow=np.arange(4, dtype=np.int16), fps=np.array(30.0))
    assert npz_headers(npz) == {"rgb": ((1, 7, 2), np.dtype(np.float64)), "flow": ((4,), np.dtype(np.int16)), "fps": ((), np.dtype(np.float64))}
    with zipfile.ZipFile(npz) as archive, archive.open("rgb.npy") as handle:
        read_header(handle)
        assert handle.read() == np.zeros((1, 7, 2)).tobytes()  # the data is left unread, right after the header


def test_format_3_header_is_utf8(tmp_path: Path) -> None:
    """A field name outside latin-1 (why numpy writes 3.0): read as written, not as latin-1 bytes."""
    array = np.zeros(3, dtype=[("δ", np.float32), ("x", np.int8)])
    path = write_npy(tmp_path / "s.npy", array, (3, 0))
    shape, dtype = npy_header(path)
    assert shape == (3,) and dtype.names == ("δ", "x") and dtype == array.dtype


def test_unsupported_version_and_broken_header_are_value_errors(tmp_path: Path) -> None:
    path = write_npy(tmp_path / "a.npy", np.zeros(2), (3, 0))
    data = bytearray(path.read_bytes())
    data[6] = 4
    (tmp_path / "v4.npy").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"format version 4\.0 is not supported"):
        npy_header(tmp_path / "v4.npy")
    (tmp_path / "cut.npy").write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match="truncated"):
        npy_header(tmp_path / "cut.npy")


@pytest.mark.parametrize("version", VERSIONS)
def test_layout_reads_feature_files_of_every_version(feature_root: Path, version: tuple[int, int]) -> None:
    path = feature_root / "features" / "a1.npz"
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    write_npz(path, version, **arrays)
    assert load_feature_set(feature_root, snippet_length=8, stride=8).num_snippets["a1"] == 10
    write_npz(path, version, **{**arrays, "rgb": arrays["rgb"].astype(np.int64)})
    with pytest.raises(LayoutError, match=f"{path}: rgb has dtype int64, expected float32"):
        load_feature_set(feature_root, snippet_length=8, stride=8)


@pytest.mark.parametrize("version", VERSIONS)
def test_importer_inspects_feature_files_of_every_version(tmp_path: Path, version: tuple[int, int]) -> None:
    rgb = write_npy(tmp_path / "v-rgb.npy", np.zeros((1, 6, 4), np.float32), version)
    flow = write_npz(tmp_path / "v-flow.npz", version, feature=np.zeros((6, 2), np.float32), frame_cnt=np.array(52))
    info = inspect(FeatureSource("v", rgb, flow, combined=False))
    assert (info.num_snippets, info.rgb_width, info.flow_width, info.frame_count) == (6, 4, 2, 52)  # frame_cnt from the flow file
    combined = write_npz(tmp_path / "c.npz", version, rgb=np.zeros((6, 4), np.float32), flow=np.zeros((6, 2), np.float32), frame_cnt=np.array(52))
    assert inspect(FeatureSource("c", combined, combined, combined=True)).frame_count == 52
    (tmp_path / "bad-rgb.npy").write_bytes(b"not numpy")
    with pytest.raises(DatasetImportError, match="bad-rgb.npy: not a readable .npy file"):
        inspect(FeatureSource("bad", tmp_path / "bad-rgb.npy", flow, combined=False))
