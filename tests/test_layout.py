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
