"""Feature extraction: frame reading, TV-L1 flow, snippets, the command line end to end.

Videos are generated here: a blurred-noise texture and a white disk panning +2 px per frame to the
right, written as MJPG ``.avi`` and as a folder of PNGs. I3D weights are random (He-initialised, in
the public checkpoint layout) and saved to a temporary file, so no download is involved.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pwes.data.layout import (
    ANNOTATION_COLUMNS,
    VIDEO_COLUMNS,
    LayoutError,
    expected_snippets,
    load_feature_set,
    load_features,
    write_feature_set,
)
from pwes.data.recorded import read_recorded
from pwes.extract.__main__ import main
from pwes.extract.flow import FLOW_BOUND, FlowComputer, open_flow, open_frames, scale_flow, tvl1_flow
from pwes.extract.i3d import STREAM_CHANNELS, I3DWeightsError, InceptionI3d, SamePadMaxPool3d, Unit3D, load_i3d
from pwes.extract.pipeline import FeatureSetWriter, plan_jobs, snippet_starts
from pwes.extract.video import FrameTransform, VideoError, VideoSource

REPO = Path(__file__).resolve().parents[1]
LAYOUT_CANDIDATES = (REPO.parent / "shared" / "i3d" / "checkpoint-layout.json", REPO / "shared" / "i3d" / "checkpoint-layout.json")
SIZE = 64  # crop size used throughout: small, so random-weight I3D on a CPU stays fast
STEP = 2  # pixels the content moves right per frame


def layout_shapes(stream: str) -> dict[str, list[int]]:
    """Names and shapes of the public checkpoint (from the shared layout file when present, else the model's own)."""
    for path in LAYOUT_CANDIDATES:
        if path.is_file():
            return json.loads(path.read_text())[f"{stream}_imagenet.pt"]
    return {k: list(v.shape) for k, v in InceptionI3d(STREAM_CHANNELS[stream]).state_dict().items()}


def random_state_dict(stream: str, seed: int = 0, with_batch_counts: bool = False) -> dict[str, torch.Tensor]:
    """A state dict in the checkpoint layout: He-normal convolutions, identity batch norms."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout_shapes(stream).items():
        if key.endswith("num_batches_tracked"):
            if with_batch_counts:
                state[key] = torch.tensor(0)
        elif key.endswith("conv3d.weight"):
            fan_in = int(np.prod(shape[1:]))
            state[key] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif key.endswith(("bn.weight", "running_var")):
            state[key] = torch.ones(shape)
        else:  # bn.bias, running_mean, logits bias
            state[key] = torch.zeros(shape)
    return state


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for seed, stream in enumerate(STREAM_CHANNELS):
        paths[stream] = folder / f"{stream}_imagenet.pt"
        torch.save(random_state_dict(stream, seed), paths[stream])  # no num_batches_tracked, like old files
    return paths


def panning_frames(count: int, size: int = SIZE, seed: int = 0) -> list[np.ndarray]:
    """BGR frames whose whole content moves +STEP px in x per frame."""
    rng = np.random.default_rng(seed)
    width = size + STEP * count
    texture = cv2.GaussianBlur((rng.random((size, width, 3)) * 255).astype(np.uint8), (0, 0), 1.5)
    cv2.circle(texture, (width // 2, size // 2), size // 6, (255, 255, 255), -1)
    return [np.ascontiguousarray(texture[:, STEP * (count - i) : STEP * (count - i) + size]) for i in range(count)]


def write_avi(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (frames[0].shape[1], frames[0].shape[0]))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def write_pngs(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        assert cv2.imwrite(str(folder / f"img{i}.png"), frame)
    return folder


def run_cli(*args: str | os.PathLike) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pwes.extract", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # see single_thread_torch
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)


@pytest.fixture(autouse=True)
def single_thread_torch() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine, OpenMP threads that wait on each other run 10-20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------- frames


def test_frame_folder_is_read_in_natural_order_as_rgb(tmp_path: Path) -> None:
    for index in (1, 2, 10):
        bgr = np.zeros((4, 6, 3), np.uint8)
        bgr[..., 2] = index  # red channel in BGR order
        cv2.imwrite(str(tmp_path / f"frame{index}.png"), bgr)
    (tmp_path / "._frame3.png").write_bytes(b"macOS resource fork")  # hidden: not a frame
    (tmp_path / "notes.txt").write_text("not a frame")
    source = VideoSource.from_path(tmp_path)
    frames = list(source.frames())
    assert source.is_frame_folder and source.name == tmp_path.name
    assert [int(f[0, 0, 0]) for f in frames] == [1, 2, 10]  # red first: RGB order
    assert source.probe() == (3, None)


def test_frame_transform_crop_box_then_resize_and_centre_crop() -> None:
    frame = np.zeros((100, 120, 3), np.uint8)
    frame[..., 0] = np.arange(120, dtype=np.uint8)[None, :]
    frame[..., 1] = np.arange(100, dtype=np.uint8)[:, None]
    boxed = FrameTransform(resize=64, crop_size=64, crop_box=(10, 20, 64, 64))(frame)
    np.testing.assert_array_equal(boxed, frame[20:84, 10:74])
    resized = FrameTransform(resize=50, crop_size=40)(frame)  # 100x120 -> 50x60 -> centre 40x40
    assert resized.shape == (40, 40, 3)
    assert abs(int(resized[0, 0, 1]) - 2 * 5) <= 1 and abs(int(resized[0, 0, 0]) - 2 * 10) <= 1
    with pytest.raises(VideoError, match="crop box"):
        FrameTransform(resize=64, crop_size=64, crop_box=(100, 0, 64, 64))(frame)
    with pytest.raises(ValueError, match="crop size"):
        FrameTransform(resize=32, crop_size=64)


# ---------------------------------------------------------------- flow


def test_tvl1_flow_of_a_known_shift_has_the_right_sign_and_size() -> None:
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur((rng.random((96, 112)) * 255).astype(np.uint8), (0, 0), 2)
    previous, following = texture[:, 10:106], texture[:, 8:104]  # content moves +2 px in x
    flow = tvl1_flow(previous, following)
    interior = flow[8:-8, 8:-8]
    assert flow.shape == (96, 96, 2) and flow.dtype == np.float32
    assert interior[..., 0].mean() == pytest.approx(2.0, abs=0.1)
    assert abs(interior[..., 1].mean()) < 0.1
    assert scale_flow(interior)[..., 0].mean() == pytest.approx(2.0 / FLOW_BOUND, abs=0.005)
    np.testing.assert_allclose(scale_flow(np.array([30.0, -50.0, 10.0, -4.0])), [1.0, -1.0, 0.5, -0.2])


def test_flow_workers_give_the_same_numbers_as_in_process(tmp_path: Path) -> None:
    frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in panning_frames(5, size=32)]
    stored = open_frames(tmp_path / "frames.uint8", len(frames), 32, mode="w+")
    stored[:] = np.stack(frames)
    stored.flush()
    results = []
    for workers in (0, 2):
        with FlowComputer(workers) as computer:
            done: list[int] = []
            stats = computer.compute(tmp_path / "frames.uint8", tmp_path / f"flow{workers}", len(frames), 32, done.append)
        assert sum(done) == stats.pairs == len(frames) - 1
        assert 0 < stats.cpu and 0 < stats.wall and stats.rate == pytest.approx(4 / stats.wall)  # CPU time from every process
        results.append(np.array(open_flow(tmp_path / f"flow{workers}", len(frames) - 1, 32), dtype=np.float32))
    np.testing.assert_array_equal(results[0], results[1])
    assert results[0][:, 6:-6, 6:-6, 0].mean() == pytest.approx(STEP / FLOW_BOUND, abs=0.02)


# ---------------------------------------------------------------- I3D


def test_model_has_the_public_checkpoint_names_and_shapes() -> None:
    for stream, channels in STREAM_CHANNELS.items():
        own = {k: list(v.shape) for k, v in InceptionI3d(channels).state_dict().items()}
        assert own == layout_shapes(stream)  # the shared layout file when present
        assert len(own) == 344  # hand-checked against the public files
        assert own["Conv3d_1a_7x7.conv3d.weight"] == [64, channels, 7, 7, 7]
        assert own["Mixed_4e.b1b.conv3d.weight"] == [288, 144, 3, 3, 3]
        assert own["Mixed_5c.b3b.conv3d.weight"] == [128, 832, 1, 1, 1]
        assert own["logits.conv3d.weight"] == [400, 1024, 1, 1, 1] and own["logits.conv3d.bias"] == [400]


@pytest.mark.parametrize("with_batch_counts", [False, True])
def test_checkpoint_in_the_layout_loads_and_gives_nonnegative_1024d_features(tmp_path: Path, with_batch_counts: bool) -> None:
    state = random_state_dict("flow", seed=3, with_batch_counts=with_batch_counts)
    torch.save(state, tmp_path / "flow.pt")
    model = load_i3d(tmp_path / "flow.pt", "flow")
    assert not model.training
    torch.testing.assert_close(model.Mixed_4c.b2b.conv3d.weight, state["Mixed_4c.b2b.conv3d.weight"], rtol=0, atol=0)
    with torch.inference_mode():
        features = model.extract_features(torch.rand(2, 2, 8, 48, 48) * 2 - 1)  # an 8-frame snippet
        logits = model(torch.rand(1, 2, 8, 48, 48) * 2 - 1)
    assert features.shape == (2, 1024) and features.min() >= 0 and features.mean() > 0.01
    assert logits.shape == (1, 400)


def test_wrong_layout_lists_missing_and_unexpected_keys(tmp_path: Path) -> None:
    state = random_state_dict("rgb")
    state["conv1.weight"] = state.pop("Conv3d_1a_7x7.conv3d.weight")
    del state["logits.conv3d.bias"]
    torch.save(state, tmp_path / "foreign.pt")
    with pytest.raises(I3DWeightsError) as caught:
        load_i3d(tmp_path / "foreign.pt", "rgb")
    message = str(caught.value)
    assert "foreign.pt" in message and "\n" not in message
    assert "missing 2 key(s): Conv3d_1a_7x7.conv3d.weight, logits.conv3d.bias" in message
    assert "unexpected 1 key(s): conv1.weight" in message


def test_rgb_weights_for_the_flow_stream_say_so(tmp_path: Path) -> None:
    torch.save(random_state_dict("rgb"), tmp_path / "rgb.pt")
    with pytest.raises(I3DWeightsError, match=r"expects \[64, 2, 7, 7, 7\] \(this looks like the rgb stream's weights\)"):
        load_i3d(tmp_path / "rgb.pt", "flow")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(I3DWeightsError, match="junk.pt: not a readable PyTorch weights file"):
        load_i3d(tmp_path / "junk.pt", "rgb")


def test_same_padding_follows_tensorflow() -> None:
    # SAME: output = ceil(input / stride); the odd padding pixel goes after, not before
    conv = Unit3D(3, 4, kernel=(7, 7, 7), stride=(2, 2, 2))
    assert conv(torch.zeros(1, 3, 8, 17, 16)).shape == (1, 4, 4, 9, 8)
    pool = SamePadMaxPool3d((1, 3, 3), stride=(1, 2, 2))
    grid = torch.arange(16.0).reshape(1, 1, 1, 4, 4)
    assert pool(grid).flatten().tolist() == [10.0, 11.0, 14.0, 15.0]


# ---------------------------------------------------------------- snippets and inputs


def test_snippets_drop_the_last_frame_and_stay_within_the_layout_slack() -> None:
    assert snippet_starts(26, 8, 8) == [0, 8, 16]
    assert snippet_starts(25, 8, 8) == [0, 8, 16]  # 24 usable frames: exactly three snippets
    assert snippet_starts(17, 8, 4) == [0, 4, 8]
    assert snippet_starts(9, 8, 8) == [0] and snippet_starts(8, 8, 8) == []
    assert snippet_starts(16, 8, 8) == [0] and expected_snippets(16, 8, 8) == 2  # the dropped frame costs a snippet
    for frames in range(9, 60):
        for snippet, stride in ((8, 8), (8, 2), (32, 32)):
            if frames > snippet:
                assert expected_snippets(frames, snippet, stride) - len(snippet_starts(frames, snippet, stride)) in (0, 1)


def test_plan_jobs_names_subjects_and_rejects_bad_inputs(tmp_path: Path) -> None:
    video = write_avi(tmp_path / "s07" / "07_clip.avi", panning_frames(3))
    folder = write_pngs(tmp_path / "s08" / "08_other", panning_frames(3))
    twin = write_avi(tmp_path / "elsewhere" / "07_clip.avi", panning_frames(3))
    jobs, failed = plan_jobs([video, folder, twin, tmp_path / "missing.avi"], fps=25.0)
    assert [(j.source.name, j.subject, j.fps) for j in jobs] == [("07_clip", "s07", 25.0), ("08_other", "s08", 25.0)]
    assert [r.status for r in failed] == ["failed", "failed"]
    assert "already used" in failed[0].message and "no such video" in failed[1].message
    assert VideoSource.from_path(video).probe() == (3, 30.0)  # count and rate from the container
    jobs, _ = plan_jobs([video], subject_from="prefix")
    assert jobs[0].subject == "07" and jobs[0].fps is None
    jobs, failed = plan_jobs([folder])
    assert not jobs and "--fps" in failed[0].message


def test_writer_refuses_a_foreign_videos_csv(tmp_path: Path) -> None:
    (tmp_path / "videos.csv").write_text("name,frames\nx,3\n")
    with pytest.raises(LayoutError, match="videos.csv"):
        FeatureSetWriter(tmp_path, 8, 8)


def test_writer_refuses_to_mix_snippet_settings_in_one_folder(tmp_path: Path) -> None:
    rows = [{"video": "a", "subject": "s1", "num_frames": 100, "fps": 30}]
    x = np.ones((12, 4), np.float32)
    write_feature_set(tmp_path, rows, [], {"a": (x, x)}, snippet_length=8, stride=8)
    FeatureSetWriter(tmp_path, 8, 8)  # the same settings: fine
    with pytest.raises(LayoutError, match=r"a\.npz: the features were cut with snippet_length 8, stride 8, but this extraction uses "
                       r"snippet_length 8, stride 2 .*; extract into another --out, or pass --snippet 8 --stride 8"):
        FeatureSetWriter(tmp_path, 8, 2)


# ---------------------------------------------------------------- the command line


def test_cli_extracts_video_and_frame_folder_into_a_valid_feature_set(tmp_path: Path, weights: dict[str, Path]) -> None:
    frames = panning_frames(26)
    avi = write_avi(tmp_path / "videos" / "s01" / "clip_avi.avi", frames)
    pngs = write_pngs(tmp_path / "videos" / "s01" / "clip_png", frames)
    root, cache = tmp_path / "features", tmp_path / "cache"
    other = np.ones((12, 1024), np.float32)  # a video extracted earlier: its row must survive the merge
    write_feature_set(root, [{"video": "other", "subject": "s99", "num_frames": 100, "fps": 30}], [], {"other": (other, other)})
    args = [avi, pngs, "--out", root, "--rgb-weights", weights["rgb"], "--flow-weights", weights["flow"], "--snippet", 8]
    args += ["--fps", 30, "--resize", SIZE, "--crop-size", SIZE, "--frames-from", cache, "--workers", 2, "--batch-size", 2, "--quiet"]

    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "ok clip_avi: 26 frames, 3 snippets" in first.stdout

    feature_set = load_feature_set(root, snippet_length=8)
    assert list(feature_set.videos) == ["other", "clip_avi", "clip_png"]
    assert feature_set.feature_dims == (1024, 1024)
    rows = {r["video"]: r for r in read_csv(root / "videos.csv")}
    assert rows["clip_avi"] == {"video": "clip_avi", "subject": "s01", "num_frames": "26", "fps": "30.0"}
    assert rows["other"]["subject"] == "s99"
    # each file records what it was cut with, so a reader with another stride refuses it
    assert read_recorded(root / "features" / "clip_avi.npz") == {"snippet_length": 8, "stride": 8, "fps": 30.0}
    features = {name: load_features(root / "features" / f"{name}.npz") for name in ("clip_avi", "clip_png")}
    for rgb, flow in features.values():
        assert rgb.shape == flow.shape == (expected_snippets(25, 8, 8), 1024) == (3, 1024)
        assert rgb.dtype == flow.dtype == np.float32
        assert rgb.min() >= 0 and flow.min() >= 0  # post-ReLU average pool
        assert rgb.mean() > 0.01 and flow.mean() > 0.01
    # lossy MJPG and lossless PNG of the same frames give close, not identical, features
    assert not np.array_equal(features["clip_avi"][0], features["clip_png"][0])
    assert np.corrcoef(features["clip_avi"][0].ravel(), features["clip_png"][0].ravel())[0, 1] > 0.9

    # the cached flow of the panning clip: +2 px in x, about 0 in y, i.e. +0.1 after scaling
    for name in ("clip_avi", "clip_png"):
        flow = np.array(open_flow(cache / name / "flow.float16", 25, SIZE), dtype=np.float32)[:, 8:-8, 8:-8]
        assert flow[..., 0].mean() == pytest.approx(STEP / FLOW_BOUND, abs=0.015)
        assert abs(flow[..., 1].mean()) < 0.01
    frames_png = open_frames(cache / "clip_png" / "frames.uint8", 26, SIZE)
    np.testing.assert_array_equal(frames_png[3], cv2.cvtColor(frames[3], cv2.COLOR_BGR2RGB))

    # second run: decoded frames and flow come from the cache, and the features are identical
    stamps = {p: p.stat().st_mtime_ns for p in cache.glob("*/*.*")}
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*/*.*")} == stamps
    for name, (rgb, flow) in features.items():
        again = load_features(root / "features" / f"{name}.npz")
        np.testing.assert_array_equal(again[0], rgb)
        np.testing.assert_array_equal(again[1], flow)


def test_cli_reports_bad_videos_and_still_extracts_the_good_one(
    tmp_path: Path, weights: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    good = write_pngs(tmp_path / "s01" / "good", panning_frames(10))
    short = write_pngs(tmp_path / "s01" / "short", panning_frames(8))
    broken = tmp_path / "s01" / "broken.avi"
    broken.write_bytes(b"not a video at all" * 50)
    unreadable = write_pngs(tmp_path / "s01" / "unreadable", panning_frames(10))
    (unreadable / "img4.png").write_bytes(b"garbage")
    root = tmp_path / "out"
    status = main([
        str(broken), str(short), str(good), str(unreadable), "--out", str(root), "--rgb-weights", str(weights["rgb"]),
        "--flow-weights", str(weights["flow"]), "--snippet", "8", "--fps", "30", "--resize", "64", "--crop-size", "64",
        "--workers", "0", "--quiet",
    ])  # fmt: skip
    stderr = capsys.readouterr().err
    assert status == 2
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4, stderr
    assert "broken.avi" in errors[0]
    assert "short" in errors[1] and "8 frame(s), shorter than one snippet" in errors[1]
    assert "img4.png: unreadable frame image" in errors[2]
    assert errors[3] == "error: 3 of 4 input(s) failed: broken, short, unreadable"
    feature_set = load_feature_set(root, snippet_length=8)
    assert list(feature_set.videos) == ["good"] and feature_set.num_snippets["good"] == 1
    assert read_csv(root / "annotations.csv") == [] and (root / "annotations.csv").read_text().strip() == ",".join(ANNOTATION_COLUMNS)
    assert tuple(read_csv(root / "videos.csv")[0]) == VIDEO_COLUMNS

    written = (root / "features" / "good.npz").stat().st_mtime_ns
    status = main([str(good), "--out", str(root), "--rgb-weights", str(weights["rgb"]), "--flow-weights", str(weights["flow"]),
                   "--snippet", "8", "--fps", "30", "--resize", "64", "--crop-size", "64", "--skip-existing", "--quiet"])  # fmt: skip
    assert status == 0 and "skipped good" in capsys.readouterr().out
    assert (root / "features" / "good.npz").stat().st_mtime_ns == written


def test_cli_missing_weights_is_one_clear_error(tmp_path: Path, weights: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    clip = write_pngs(tmp_path / "s01" / "clip", panning_frames(10))
    status = main([
        str(clip), "--out", str(tmp_path / "out"), "--rgb-weights", str(tmp_path / "nowhere.pt"),
        "--flow-weights", str(weights["flow"]), "--snippet", "8", "--fps", "30",
    ])  # fmt: skip
    stderr = capsys.readouterr().err
    assert status == 2
    assert stderr.count("\n") == 1 and stderr.startswith("error:")  # one line, no traceback
    assert "nowhere.pt: weights file not found" in stderr
    assert "rgb_imagenet.pt" in stderr and "pytorch-i3d" in stderr
    assert not (tmp_path / "out" / "features").exists()
