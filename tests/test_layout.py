"""The feature-set layout: a valid set loads; each kind of bad input gives a one-line error naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pwes.data.layout import LayoutError, expected_snippets, load_feature_set
from pwes.io import save_npz

from conftest import make_feature_set


def load(root: Path):
    return load_feature_set(root, snippet_length=8, stride=8)


def test_valid_set_loads(feature_root: Path) -> None:
    fs = load(feature_root)
    assert list(fs.videos) == ["a1", "a2", "b1", "c1"]
    assert fs.subjects == ["s1", "s2", "s3"]
    assert fs.feature_dims == (4, 4)
    assert fs.num_snippets["a1"] == 10
    a1 = fs.intervals["a1"]
    assert [(i.onset, i.offset, i.type, i.apex) for i in a1] == [(8, 15, "ME", 10), (40, 70, "MaE", None)]
    assert fs.intervals["c1"][0].apex is None  # -1 means unknown
    assert fs.intervals["a2"] == []
    assert fs.videos_of(["s1"]) == ["a1", "a2"]
    assert fs.snippet_frames(2) == (16, 23)


def test_expected_snippets() -> None:
    assert expected_snippets(80, 8, 8) == 10
    assert expected_snippets(87, 8, 8) == 10
    assert expected_snippets(7, 8, 8) == 0
    assert expected_snippets(20, 8, 2) == 7


def rewrite(path: Path, text: str) -> None:
    path.write_text(text)


def assert_error(root: Path, *fragments: str) -> str:
    with pytest.raises(LayoutError) as info:
        load(root)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_folder(tmp_path: Path) -> None:
    assert_error(tmp_path / "nope", "nope", "not found")


def test_missing_csv(feature_root: Path) -> None:
    (feature_root / "annotations.csv").unlink()
    assert_error(feature_root, "annotations.csv", "not found")


def test_missing_and_extra_columns(feature_root: Path) -> None:
    rewrite(feature_root / "videos.csv", "video,subject,frames,fps\na1,s1,80,30\n")
    assert_error(feature_root, "videos.csv", "missing column(s) num_frames", "unexpected column(s) frames")


def test_duplicate_video(feature_root: Path) -> None:
    rewrite(feature_root / "videos.csv", "video,subject,num_frames,fps\na1,s1,80,30\na1,s1,80,30\n")
    assert_error(feature_root, "videos.csv:3", "duplicate video id 'a1'", "line 2")


def test_annotation_video_unknown(feature_root: Path) -> None:
    with open(feature_root / "annotations.csv", "a") as handle:
        handle.write("zz,s1,1,,5,ME\n")
    assert_error(feature_root, "annotations.csv:6", "'zz' is not listed in videos.csv")


def test_video_without_feature_file(feature_root: Path) -> None:
    (feature_root / "features" / "b1.npz").unlink()
    assert_error(feature_root, "b1.npz", "feature file for video 'b1' not found")


def test_rgb_flow_lengths_differ(feature_root: Path) -> None:
    save_npz(feature_root / "features" / "a2.npz", rgb=np.zeros((8, 4), np.float32), flow=np.zeros((7, 4), np.float32))
    assert_error(feature_root, "a2.npz", "rgb has 8 snippets but flow has 7")


def test_feature_length_mismatch_and_slack(feature_root: Path) -> None:
    # a2 has 64 frames -> 8 snippets; 9 is within the one-snippet slack, 10 is not.
    save_npz(feature_root / "features" / "a2.npz", rgb=np.zeros((9, 4), np.float32), flow=np.zeros((9, 4), np.float32))
    assert load(feature_root).num_snippets["a2"] == 9
    save_npz(feature_root / "features" / "a2.npz", rgb=np.zeros((10, 4), np.float32), flow=np.zeros((10, 4), np.float32))
    assert_error(feature_root, "a2.npz", "10 snippets", "give 8 (+-1 allowed)")


def test_nan_features(feature_root: Path) -> None:
    rgb = np.zeros((10, 4), np.float32)
    rgb[3, 1] = np.nan
    save_npz(feature_root / "features" / "a1.npz", rgb=rgb, flow=np.zeros((10, 4), np.float32))
    assert_error(feature_root, "a1.npz", "NaN or Inf", "snippet 3")


def test_inf_features(feature_root: Path) -> None:
    flow = np.zeros((10, 4), np.float32)
    flow[7, 0] = np.inf
    save_npz(feature_root / "features" / "a1.npz", rgb=np.zeros((10, 4), np.float32), flow=flow)
    assert_error(feature_root, "a1.npz", "flow contains NaN or Inf", "snippet 7")


@pytest.mark.parametrize(
    ("row", "fragments"),
    [
        ("a1,s1,20,,10,ME", ("onset 20 > offset 10",)),
        ("a1,s1,70,,80,MaE", ("outside video 'a1' of 80 frames",)),
        ("a1,s1,-1,,5,MaE", ("outside video",)),
        ("a1,s1,1,,5,micro", ("unknown type 'micro'",)),
        ("a1,s1,x,,5,ME", ("onset 'x' is not a number",)),
        ("a1,s1,1.5,,5,ME", ("not a whole frame number",)),
        ("a1,s9,1,,5,ME", ("subject 's9' differs from 's1'",)),
        ("a1,s1,1,9,5,ME", ("apex 9 outside its interval",)),
    ],
)
def test_bad_annotation_rows(feature_root: Path, row: str, fragments: tuple[str, ...]) -> None:
    rewrite(feature_root / "annotations.csv", "video,subject,onset,apex,offset,type\n" + row + "\n")
    assert_error(feature_root, "annotations.csv:2", *fragments)


@pytest.mark.parametrize(("row", "fragment"), [("a1,s1,0,30", "num_frames must be positive"), ("a1,s1,80,abc", "fps 'abc' is not a number"), ("a1,,80,30", "empty subject")])
def test_bad_video_rows(feature_root: Path, row: str, fragment: str) -> None:
    rewrite(feature_root / "videos.csv", "video,subject,num_frames,fps\n" + row + "\n")
    rewrite(feature_root / "annotations.csv", "video,subject,onset,apex,offset,type\n")
    assert_error(feature_root, "videos.csv:2", fragment)


def test_empty_videos_csv(feature_root: Path) -> None:
    rewrite(feature_root / "videos.csv", "video,subject,num_frames,fps\n")
    assert_error(feature_root, "videos.csv", "no videos listed")


def test_feature_widths_must_agree(tmp_path: Path) -> None:
    root = make_feature_set(tmp_path / "set")
    save_npz(root / "features" / "b1.npz", rgb=np.zeros((9, 6), np.float32), flow=np.zeros((9, 6), np.float32))
    assert_error(root, "b1.npz", "feature widths rgb=6, flow=6 differ")


def test_not_an_npz(feature_root: Path) -> None:
    (feature_root / "features" / "a1.npz").write_text("garbage")
    assert_error(feature_root, "a1.npz", "not a readable .npz")


# ---------------------------------------------------------------- duplicates, ids, empty ground truth


@pytest.mark.parametrize("second", ["a1,s1,8,10,15,ME", "a1,s1,8,,15,ME", "a1,s1,8,-1,15,ME"])
def test_duplicated_annotation_row_names_both_lines(feature_root: Path, second: str) -> None:
    """The same expression twice (apex aside) is a second truth no proposal can match: refused."""
    with open(feature_root / "annotations.csv", "a") as handle:
        handle.write(second + "\n")
    assert_error(feature_root, "annotations.csv:6: duplicates line 2 (ME [8, 15] of video 'a1')", "list each expression once")


def test_same_interval_of_another_type_is_not_a_duplicate(feature_root: Path) -> None:
    with open(feature_root / "annotations.csv", "a") as handle:
        handle.write("a1,s1,8,,15,MaE\n")
    assert len(load(feature_root).intervals["a1"]) == 3


@pytest.mark.parametrize(
    ("video", "subject", "fragment"),
    [
        ("a/1", "s1", "video id 'a/1' contains '/'"),
        ("a,1", "s1", None),  # a comma is a CSV field separator: the row has too many fields
        ('"a,1"', "s1", "video id 'a,1' contains ','"),
        ("a\\1", "s1", "video id 'a\\\\1' contains '\\\\'"),
        ("..", "s1", "video id '..' must start with a letter or digit"),
        (".hidden", "s1", "must start with a letter or digit"),
        ("-x", "s1", "video id '-x' must start with a letter or digit"),
        ("a 1", "s1", "video id 'a 1' contains ' '"),
        ("a1", "s 1", "subject id 's 1' contains ' '"),
        ("a1", "s/1", "subject id 's/1' contains '/'"),
        ("a1", "s\x011", "subject id 's\\x011' contains '\\x01'"),
        ("a1", "s:1", "subject id 's:1' contains ':'"),
        ("a" * 129, "s1", "is longer than 128 characters"),
        ("ä1", "s1", "contains 'ä'"),
    ],
)
def test_unsafe_ids_are_refused_with_file_and_line(feature_root: Path, video: str, subject: str, fragment: str | None) -> None:
    rewrite(feature_root / "videos.csv", f"video,subject,num_frames,fps\na2,s1,64,30\n{video},{subject},80,30\n")
    rewrite(feature_root / "annotations.csv", "video,subject,onset,apex,offset,type\n")
    message = assert_error(feature_root, "videos.csv:3")
    if fragment is None:
        assert "5 fields, expected 4" in message
    else:
        assert fragment in message and "ids may hold only letters, digits, '.', '_' and '-'" in message


def test_whitespace_only_ids_are_empty(feature_root: Path) -> None:
    rewrite(feature_root / "videos.csv", "video,subject,num_frames,fps\n  ,s1,80,30\n")
    assert_error(feature_root, "videos.csv:2", "empty video id")


def test_real_dataset_ids_are_safe() -> None:
    from pwes.data.ids import id_problem

    for name in ("15_0401girlcrashing", "s15", "006_1", "006", "spNO.1_a", "spNO.1", "s01_v01", "A-b.c_9"):
        assert id_problem(name) is None, name


def test_no_annotation_rows_loads_with_a_warning_naming_the_file(feature_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    rewrite(feature_root / "annotations.csv", "video,subject,onset,apex,offset,type\n")
    with caplog.at_level("WARNING"):
        fs = load(feature_root)
    assert not any(fs.intervals.values())
    assert f"{feature_root / 'annotations.csv'}: no annotation rows: there is no ground truth" in caplog.text
    with pytest.raises(LayoutError, match=r"annotations.csv: no annotation rows; training needs at least one annotated expression"):
        load_feature_set(feature_root, 8, 8, require_annotations=True)


def test_annotated_sets_load_without_a_warning(feature_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        load(feature_root)
    assert caplog.text == ""


# ---------------------------------------------------------------- feature shapes and values


def test_feature_width_zero_is_named(feature_root: Path) -> None:
    save_npz(feature_root / "features" / "a1.npz", rgb=np.zeros((10, 0), np.float32), flow=np.zeros((10, 0), np.float32))
    assert_error(feature_root, "a1.npz: rgb has shape (10, 0): feature width 0")


def test_zero_length_features_are_named(feature_root: Path) -> None:
    save_npz(feature_root / "features" / "a1.npz", rgb=np.zeros((0, 4), np.float32), flow=np.zeros((0, 4), np.float32))
    assert_error(feature_root, "a1.npz: rgb has shape (0, 4): no snippets (zero-length features)")


def test_video_shorter_than_one_snippet(feature_root: Path) -> None:
    rewrite(feature_root / "videos.csv", "video,subject,num_frames,fps\na1,s1,5,30\n")
    rewrite(feature_root / "annotations.csv", "video,subject,onset,apex,offset,type\n")
    assert_error(feature_root, "a1.npz: video 'a1' has 5 frames, fewer than one snippet of 8")


def test_one_dimensional_stream_is_named(feature_root: Path) -> None:
    save_npz(feature_root / "features" / "a1.npz", rgb=np.zeros((10, 4), np.float32), flow=np.zeros(10, np.float32))
    assert_error(feature_root, "a1.npz: flow has shape (10,), expected [T, D]")


def test_huge_finite_features_name_file_stream_and_snippet(feature_root: Path) -> None:
    """3e20 is finite in float32, but its square is not: refused with where and why."""
    flow = np.zeros((10, 4), np.float32)
    flow[6, 2] = -3e20
    save_npz(feature_root / "features" / "a1.npz", rgb=np.zeros((10, 4), np.float32), flow=flow)
    assert_error(feature_root, "a1.npz: flow has values up to 3e+20 (first at snippet 6, dimension 2)",
                 "beyond +-1e+06 overflow float32", "rescale")
    flow[6, 2] = 1e6  # the bound itself is accepted
    save_npz(feature_root / "features" / "a1.npz", rgb=np.zeros((10, 4), np.float32), flow=flow)
    assert load(feature_root).num_snippets["a1"] == 10


def test_float64_features_beyond_float32_are_named_not_inf(feature_root: Path) -> None:
    rgb = np.zeros((10, 4), np.float64)
    rgb[2, 0] = 1e300  # finite in the file (it would become inf in float32): named as too large
    np.savez(feature_root / "features" / "a1.npz", rgb=rgb, flow=np.zeros((10, 4)))
    assert_error(feature_root, "a1.npz: rgb has values up to 1e+300 (first at snippet 2, dimension 0)")


def test_check_feature_arrays_for_files_outside_a_set(tmp_path: Path) -> None:
    from pwes.data.layout import check_feature_arrays, load_features

    path = tmp_path / "x.npz"
    save_npz(path, rgb=np.zeros((3, 0), np.float32), flow=np.zeros((3, 0), np.float32))
    load_features(path)  # unchecked: the caller validated the set already
    with pytest.raises(LayoutError, match=r"x.npz: rgb has shape \(3, 0\): feature width 0"):
        load_features(path, check=True)
    assert check_feature_arrays(path, np.ones((3, 2), np.float32), np.ones((3, 2), np.float32)) == 3
    with pytest.raises(LayoutError, match=r"rgb has 3 snippets but flow has 2"):
        check_feature_arrays(path, np.ones((3, 2), np.float32), np.ones((2, 2), np.float32))


# ---------------------------------------------------------------- the CSV files themselves


def test_duplicate_header_column(feature_root: Path) -> None:
    rewrite(feature_root / "videos.csv", "video,subject,num_frames,fps,fps\na1,s1,80,30,30\n")
    assert_error(feature_root, "videos.csv:1: duplicate column(s) fps")


def test_a_workbook_given_as_csv_is_named(feature_root: Path) -> None:
    import zipfile

    (feature_root / "annotations.csv").unlink()
    with zipfile.ZipFile(feature_root / "annotations.csv", "w") as book:
        book.writestr("xl/workbook.xml", "\x89\xff" * 50)
    assert_error(feature_root, "annotations.csv: is a zip archive (an .xlsx workbook?), not a CSV text file")


def test_latin1_csv_is_not_utf8(feature_root: Path) -> None:
    (feature_root / "videos.csv").write_bytes("video,subject,num_frames,fps\na1,s\xe91,80,30\n".encode("latin-1"))
    assert_error(feature_root, "videos.csv: not a UTF-8 text file")


def test_a_field_too_large_for_csv_is_named(feature_root: Path) -> None:
    rewrite(feature_root / "annotations.csv", "video,subject,onset,apex,offset,type\n\"" + "x" * 200_000 + "\n")
    assert_error(feature_root, "annotations.csv:", "not readable as CSV")


def test_float16_features_load_without_overflow_warnings(feature_root: Path) -> None:
    import warnings

    np.savez(feature_root / "features" / "a1.npz", rgb=np.ones((10, 4), np.float16), flow=np.ones((10, 4), np.float16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(feature_root).num_snippets["a1"] == 10


def test_recorded_snippet_settings_are_checked_against_the_dataset_settings(tmp_path: Path) -> None:
    from pwes.data.layout import write_feature_set
    from pwes.data.recorded import read_recorded

    x = np.ones((57, 4), np.float32)  # 120 frames, 8-frame snippets every 2 frames
    rows = [{"video": "v", "subject": "s", "num_frames": 120, "fps": 30}]
    write_feature_set(tmp_path / "rec", rows, [], {"v": (x, x)}, snippet_length=8, stride=2)
    assert read_recorded(tmp_path / "rec" / "features" / "v.npz") == {"snippet_length": 8, "stride": 2, "fps": 30.0}
    assert load_feature_set(tmp_path / "rec", 8, 2).num_snippets == {"v": 57}
    with pytest.raises(LayoutError, match=r"v\.npz: the features were cut with snippet_length 8, stride 2, but the dataset settings are "
                       r"snippet_length 8, stride 4 \(their snippets would be placed at the wrong frames\)"):
        load_feature_set(tmp_path / "rec", 8, 4)
    # without the record the count still gives it away, and the message names the stride that fits
    write_feature_set(tmp_path / "bare", rows, [], {"v": (x, x)})
    with pytest.raises(LayoutError, match=r"v\.npz: 57 snippets, but 120 frames with snippet length 8 and stride 8 give 15 "
                       r"\(\+-1 allowed\); the count fits stride 2; check num_frames"):
        load_feature_set(tmp_path / "bare", 8, 8)
