"""`python -m pwes.spot`: a briefly trained model finds intervals in a synthetic video's features."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pwes.io import save_npz


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """A model trained on every subject of the tiny preset (fold=none) and its feature set."""
    home = tmp_path_factory.mktemp("spot")
    env = {**os.environ, "PWES_HOME": str(home)}
    proc = run([sys.executable, "-m", "pwes.train", "dataset=synthetic_tiny", "fold=none", "logger=none", "trainer.max_steps=15", "dataset.pretrain_steps=5", "trainer.enable_progress_bar=false", "run_name=all"], home, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = home / "outputs/runs/synthetic_tiny/all/model/checkpoints/last.ckpt"
    data = next((home / ".cache" / "synthetic").glob("tiny-*"))
    return ckpt, data, env


def test_spot_writes_intervals_and_plot(trained, tmp_path: Path) -> None:
    ckpt, data, env = trained
    video = sorted((data / "features").glob("*.npz"))[0]
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(video), "--out", str(tmp_path / "out"), "--threshold", "-100"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    name = video.stem
    rows = list(csv.DictReader(open(tmp_path / "out" / f"{name}.csv")))
    info = json.loads((tmp_path / "out" / f"{name}.json").read_text())
    assert rows and len(rows) == len(info["intervals"])
    videos = {r["video"]: r for r in csv.DictReader(open(data / "videos.csv"))}
    num_frames, fps = int(videos[name]["num_frames"]), float(videos[name]["fps"])
    assert info["num_frames"] == num_frames and info["fps"] == fps and not info["num_frames_estimated"]
    for row in rows:
        onset, offset = int(row["onset"]), int(row["offset"])
        assert 0 <= onset <= offset < num_frames
        assert row["type"] == ("ME" if (offset - onset + 1) / fps <= 0.5 else "MaE")
        assert float(row["onset_s"]) == pytest.approx(onset / fps, abs=1e-3)
    png = (tmp_path / "out" / f"{name}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert f"{name}: {len(rows)} interval(s)" in proc.stdout


def test_default_threshold_comes_from_training(trained, tmp_path: Path) -> None:
    ckpt, data, env = trained
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(data), "--out", str(tmp_path / "out"), "--no-plot"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    files = sorted((tmp_path / "out").glob("*.json"))
    assert len(files) == 6  # every video of the feature-set folder
    thresholds = {json.loads(f.read_text())["score_threshold"] for f in files}
    assert len(thresholds) == 1


def test_wrong_width_and_fps_are_refused(trained, tmp_path: Path) -> None:
    ckpt, _, env = trained
    wide = tmp_path / "wide.npz"
    save_npz(wide, rgb=np.zeros((20, 32), np.float32), flow=np.zeros((20, 32), np.float32))
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(wide), "--out", str(tmp_path / "o")], tmp_path, env)
    assert proc.returncode == 2 and "feature widths rgb=32, flow=32 but the checkpoint was trained on rgb=16, flow=16" in proc.stderr
    ok = tmp_path / "ok.npz"
    save_npz(ok, rgb=np.ones((20, 16), np.float32), flow=np.ones((20, 16), np.float32))
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(ok), "--fps", "200", "--out", str(tmp_path / "o")], tmp_path, env)
    assert proc.returncode == 2 and "200 fps but the model was trained at 30 fps" in proc.stderr
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(ok), "--fps", "200", "--fps-mismatch", "warn", "--out", str(tmp_path / "o")], tmp_path, env)
    assert proc.returncode == 0 and "warning:" in proc.stderr and (tmp_path / "o" / "ok.csv").exists()


def test_unreadable_inputs(trained, tmp_path: Path) -> None:
    ckpt, _, env = trained
    bad = tmp_path / "bad.npz"
    bad.write_text("not an archive")
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(bad), "--out", str(tmp_path / "o")], tmp_path, env)
    assert proc.returncode == 2 and "bad.npz" in proc.stderr and "Traceback" not in proc.stderr
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(tmp_path / "none.ckpt"), str(bad), "--out", str(tmp_path / "o")], tmp_path, env)
    assert proc.returncode == 2 and "none.ckpt: checkpoint not found" in proc.stderr


@pytest.mark.slow
def test_spot_in_a_video_runs_extraction_first(tmp_path: Path) -> None:
    """A model trained on 1024-d features spots directly in an .avi, extraction (random I3D) first."""
    import cv2
    import torch

    from pwes.extract.i3d import InceptionI3d

    env = {**os.environ, "PWES_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = run([sys.executable, "-m", "pwes.train", "dataset=synthetic_tiny", "+dataset.synthetic.overrides.feature_dim=1024", "fold=none", "logger=none", "trainer.max_steps=4", "dataset.pretrain_steps=2", "trainer.enable_progress_bar=false", "run_name=wide"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = tmp_path / "outputs/runs/synthetic_tiny/wide/model/checkpoints/last.ckpt"
    for stream, channels in (("rgb", 3), ("flow", 2)):
        torch.manual_seed(channels)
        torch.save(InceptionI3d(in_channels=channels).state_dict(), tmp_path / f"{stream}.pt")
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (80, 80))
    texture = (rng.random((80, 200, 3)) * 255).astype(np.uint8)
    for i in range(34):
        writer.write(np.ascontiguousarray(texture[:, 2 * i : 2 * i + 80]))
    writer.release()
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(tmp_path / "clip.avi"), "--rgb-weights", str(tmp_path / "rgb.pt"), "--flow-weights", str(tmp_path / "flow.pt"),
                "--resize", "64", "--crop-size", "64", "--threshold", "-100", "--out", str(tmp_path / "spots")], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "spots" / "clip.json").read_text())
    assert info["num_frames"] == 34 and info["fps"] == 30.0
    assert all(0 <= i["onset"] <= i["offset"] < 34 for i in info["intervals"])
    assert (tmp_path / "spots" / "clip.png").exists()


def spot(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Run ``pwes.spot`` in-process (fast); returns (exit code, stdout, stderr)."""
    from pwes.spot import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_colliding_stems_get_unique_names_and_never_overwrite_another_input(trained, tmp_path: Path, capsys) -> None:
    ckpt, data, _ = trained
    files = sorted((data / "features").glob("*.npz"))
    for folder, source in (("a", files[0]), ("b", files[1])):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.npz").write_bytes(source.read_bytes())
    out = tmp_path / "out"
    code, stdout, _ = spot(capsys, "--ckpt", str(ckpt), str(tmp_path / "a" / "x.npz"), str(tmp_path / "b" / "x.npz"), "--out", str(out), "--no-plot")
    assert code == 0 and sorted(p.name for p in out.iterdir()) == ["a__x.csv", "a__x.json", "b__x.csv", "b__x.json"]
    assert json.loads((out / "b__x.json").read_text())["source"] == str((tmp_path / "b" / "x.npz").resolve())
    # an earlier run's outputs for the same input are replaced; another input's are refused
    spot(capsys, "--ckpt", str(ckpt), str(tmp_path / "a" / "x.npz"), "--out", str(out), "--no-plot")
    code, _, err = spot(capsys, "--ckpt", str(ckpt), str(tmp_path / "b" / "x.npz"), "--out", str(out), "--no-plot")
    assert code == 2 and f"x.json holds the results of {(tmp_path / 'a' / 'x.npz').resolve()}, not of" in err and "--overwrite" in err
    kept = (out / "x.json").read_text()
    assert str((tmp_path / "a" / "x.npz").resolve()) in kept
    code, _, _ = spot(capsys, "--ckpt", str(ckpt), str(tmp_path / "b" / "x.npz"), "--out", str(out), "--no-plot", "--overwrite")
    assert code == 0 and str((tmp_path / "b" / "x.npz").resolve()) in (out / "x.json").read_text()


def write_bad_inputs(tmp_path: Path, ckpt: Path) -> None:
    import torch

    rng = np.random.default_rng(0)
    ok = rng.random((20, 16), dtype=np.float32)
    save_npz(tmp_path / "ok.npz", rgb=ok, flow=ok)
    save_npz(tmp_path / "flow1d.npz", rgb=ok, flow=ok[:, 0])
    save_npz(tmp_path / "empty.npz", rgb=ok[:0], flow=ok[:0])
    save_npz(tmp_path / "huge.npz", rgb=np.full((20, 16), 1e30, np.float32), flow=ok)
    save_npz(tmp_path / "f64.npz", rgb=np.full((20, 16), 1e300), flow=ok.astype(np.float64))
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    torch.save({"pwes": checkpoint["pwes"]}, tmp_path / "meta_only.ckpt")
    for name, table in (("noframes", "video,fps\nok,30\n"), ("text", "video,num_frames,fps\nok,abc,30\n")):
        (tmp_path / name / "features").mkdir(parents=True)
        (tmp_path / name / "features" / "ok.npz").write_bytes((tmp_path / "ok.npz").read_bytes())
        (tmp_path / name / "videos.csv").write_text(table)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ckpt", "{tmp}/meta_only.ckpt", "{tmp}/ok.npz"], "meta_only.ckpt: the checkpoint has pwes metadata but no model weights"),
        (["{tmp}/flow1d.npz"], "flow1d.npz: flow has shape (20,), expected [T, D]"),
        (["{tmp}/empty.npz"], "empty.npz: rgb has shape (0, 16): no snippets"),
        (["{tmp}/huge.npz"], "huge.npz: rgb has values up to 1e+30 (first at snippet 0, dimension 0)"),
        (["{tmp}/f64.npz"], "f64.npz: rgb has values up to 1e+300"),
        (["{tmp}/noframes"], "noframes/videos.csv:1: missing column(s) num_frames"),
        (["{tmp}/text"], "text/videos.csv:2: num_frames 'abc' is not a number"),
        (["{tmp}/ok.npz", "--threshold", "nan"], "--threshold nan: not a finite number"),
        (["{tmp}/ok.npz", "--threshold", "inf"], "--threshold inf: not a finite number"),
        (["{tmp}/ok.npz", "--fps", "0"], "--fps 0: must be a positive frame rate"),
        (["{tmp}/ok.npz", "--fps", "-30"], "--fps -30: must be a positive frame rate"),
    ],
)
def test_bad_inputs_are_one_line_errors(trained, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    ckpt, _, _ = trained
    write_bad_inputs(tmp_path, ckpt)
    argv = [a.format(tmp=tmp_path) for a in args]
    if "--ckpt" not in argv:
        argv = ["--ckpt", str(ckpt), *argv]
    code, _, err = spot(capsys, *argv, "--out", str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_busy_plot_labels_only_what_fits_and_draws_annotations(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pwes.data.layout import Interval
    from pwes.inference.proposals import Proposal
    from pwes.spot import SpotInput, label_intervals, plot

    rng = np.random.default_rng(0)
    proposals = [Proposal("v", int(o), int(o) + 20, float(rng.random()), "ME") for o in rng.integers(0, 3000, 80)]
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.set_xlim(0, 3200 / 30)
    labelled = label_intervals(fig, ax, proposals, 30.0, {"ME": "red"})
    boxes = [t.get_window_extent(renderer=fig.canvas.get_renderer()) for t in ax.texts]
    assert 0 < labelled == len(boxes) < len(proposals)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    best = max(proposals, key=lambda p: p.score)
    assert any(t.get_text() == f"ME {best.score:.2f}" for t in ax.texts)  # the best score always gets its label
    plt.close(fig)
    item = SpotInput("v", np.zeros((400, 4), np.float32), np.zeros((400, 4), np.float32), 3200, 30.0, tmp_path / "v.npz", annotated=[Interval("v", "s", 100, 140, "ME", None)])
    prediction = type("P", (), {"attention": rng.random(400), "tcam": rng.random((400, 3))})()
    plot(tmp_path / "v.png", item, prediction, proposals, 8, 8)
    assert (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"


def test_features_of_another_stride_are_refused_end_to_end(trained, tmp_path: Path) -> None:
    """A model trained on stride-8 snippets and features cut every 2 frames: before the check,
    spot exited 0 with intervals at a quarter of their times. Refused whether the file records
    its stride (as pwes.extract and pwes.prepare write it) or only its row count tells."""
    from pwes.extract.pipeline import FeatureSetWriter, VideoFeatures

    ckpt, _, env = trained
    rng = np.random.default_rng(0)
    t = 57  # 120 frames, 8-frame snippets every 2 frames (the model's stride 8 gives 15)
    x = rng.random((t, 16), dtype=np.float32)
    FeatureSetWriter(tmp_path / "ext", 8, 2).write("clip", "me", VideoFeatures(x, x, 120, 30.0))
    out = tmp_path / "out"
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(tmp_path / "ext"), "--out", str(out)], tmp_path, env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'ext' / 'features' / 'clip.npz'}: the features were cut with snippet_length 8, stride 2, but the model was "
        "trained on snippet_length 8, stride 8 (their snippets would be placed at the wrong frames); extract them again with "
        "--snippet 8 --stride 8, or spot with a model trained on features like these"
    ]
    assert not out.exists() or not any(out.iterdir())
    # an older file without the record: its 57 rows do not fit 120 frames at the model's stride
    save_npz(tmp_path / "ext" / "features" / "clip.npz", rgb=x, flow=x)
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(tmp_path / "ext" / "features" / "clip.npz"), "--out", str(out)], tmp_path, env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "clip.npz: 57 snippets, but 120 frames with snippet length 8 and stride 8 give 15 (+-1 allowed); the count fits stride 2" in proc.stderr
    assert not out.exists() or not any(out.iterdir())
    # the same rows at the model's stride (15 snippets, recorded) are spotted
    FeatureSetWriter(tmp_path / "ok", 8, 8).write("clip", "me", VideoFeatures(x[:15], x[:15], 120, 30.0))
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(tmp_path / "ok"), "--out", str(out), "--no-plot"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "clip.json").read_text())["num_frames"] == 120
    assert "annotation" not in proc.stderr  # an extracted set has no annotation rows: nothing to warn about when spotting


def test_plot_legend_matches_the_bands_sits_outside_and_the_title_names_the_threshold(tmp_path: Path, monkeypatch) -> None:
    """Before: the annotated swatch was grey while the bands were red/blue, the legend sat on the
    curves (upper right, inside), and an empty plot did not say which threshold hid the intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    from pwes.data.layout import Interval
    from pwes.inference.proposals import Proposal
    from pwes.spot import SpotInput
    from pwes.spot_plot import ANNOTATED_ALPHA, COLORS, Threshold, plot

    monkeypatch.setattr(plt, "close", lambda fig=None: None)  # keep the figure to look at it
    rng = np.random.default_rng(0)
    annotated = [Interval("v", "s", 100, 190, "MaE"), Interval("v", "s", 400, 410, "ME"), Interval("v", "s", 500, 590, "MaE")]
    item = SpotInput("v", np.zeros((80, 4), np.float32), np.zeros((80, 4), np.float32), 640, 30.0, tmp_path / "v.npz", annotated=annotated)
    prediction = type("P", (), {"attention": rng.random(80), "tcam": rng.random((80, 3))})()
    plot(tmp_path / "none.png", item, prediction, [], 8, 8, Threshold(0.9, "set by --threshold", hidden=4))
    fig = plt.gcf()
    ax = fig.axes[0]
    assert ax.get_title() == "v: no interval: all 4 proposal(s) score below 0.9 (threshold set by --threshold)"
    legend = ax.get_legend()
    swatches = {t.get_text(): h.get_facecolor() for t, h in zip(legend.get_texts(), legend.legend_handles) if hasattr(h, "get_facecolor")}
    assert swatches["annotated ME (1, bottom band)"] == to_rgba(COLORS["ME"], ANNOTATED_ALPHA)
    assert swatches["annotated MaE (2, bottom band)"] == to_rgba(COLORS["MaE"], ANNOTATED_ALPHA)
    bands = [p for p in ax.patches if p.get_facecolor()[3] == pytest.approx(ANNOTATED_ALPHA)]
    assert {tuple(b.get_facecolor()) for b in bands} == {to_rgba(COLORS["ME"], ANNOTATED_ALPHA), to_rgba(COLORS["MaE"], ANNOTATED_ALPHA)}
    renderer = fig.canvas.get_renderer()
    assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))  # outside the axes
    plt.close(fig)
    plot(tmp_path / "some.png", item, prediction, [Proposal("v", 100, 180, 0.8, "MaE")], 8, 8, Threshold(0.412, "calibrated on the training videos' point labels", hidden=3))
    assert plt.gcf().axes[0].get_title() == "v: 1 interval(s) scoring >= 0.412 (threshold calibrated on the training videos' point labels; 3 below it hidden)"
    plot(tmp_path / "empty.png", item, prediction, [], 8, 8, Threshold(0.412, "calibrated on the training videos' point labels", hidden=0))
    assert plt.gcf().axes[0].get_title() == "v: no interval: the model proposed none"
    plot(tmp_path / "all.png", item, prediction, [Proposal("v", 100, 180, 0.8, "MaE")], 8, 8, Threshold(float("-inf"), "calibrated on the training videos' point labels"))
    assert plt.gcf().axes[0].get_title() == "v: 1 interval(s) (no score threshold: every proposal kept)"
    assert (tmp_path / "none.png").read_bytes()[:4] == b"\x89PNG"
