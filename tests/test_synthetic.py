"""The synthetic benchmark: determinism, layout, feature statistics, intervals, caching, CLI."""

from __future__ import annotations

import hashlib
import math
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pwes import synthetic
from pwes.synthetic import cache as synthetic_cache
from pwes.synthetic import generator as synthetic_generator
from pwes.data.layout import expected_snippets, load_feature_set, load_features
from pwes.synthetic import PRESETS, SyntheticSpec, ensure_synthetic, generate, resolve_spec
from pwes.synthetic.draws import Event

QUIET = {  # no background movement and no distractors: only the annotated expressions move
    "au_activity_std": 0.0, "activity_std": 0.0, "noise_std": 0.0, "rgb_drift_std": 0.0, "flow_drift_std": 0.0,
    "blinks_per_minute": 0.0, "head_moves_per_minute": 0.0, "movements_per_minute": 0.0,
}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("tiny"), PRESETS["tiny"], seed=0)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    later = types.SimpleNamespace(time=lambda: time.time() + 7200, localtime=time.localtime)
    monkeypatch.setattr(zipfile, "time", later)  # two hours later: zip timestamps must not leak in
    again = _files(generate(tmp_path / "again", PRESETS["tiny"], seed=0))
    assert again == _files(tiny)
    assert {"videos.csv", "annotations.csv", "synthetic.json", "features/s01_v01.npz"} <= set(again)
    other = _files(generate(tmp_path / "other", PRESETS["tiny"], seed=1))
    assert other["features/s01_v01.npz"] != again["features/s01_v01.npz"]
    assert other["annotations.csv"] != again["annotations.csv"]


def test_layout_loads_with_exact_snippet_counts(tiny: Path) -> None:
    spec = PRESETS["tiny"]
    fs = load_feature_set(tiny, spec.snippet_length, spec.stride)
    assert list(fs.videos) == ["s01_v01", "s01_v02", "s02_v01", "s02_v02", "s03_v01", "s03_v02"]
    assert fs.subjects == ["s01", "s02", "s03"]
    assert fs.feature_dims == (16, 16)
    for name, info in fs.videos.items():
        assert info.fps == 30.0
        assert 216 <= info.num_frames <= 264  # 240 frames +- 10 %
        assert fs.num_snippets[name] == expected_snippets(info.num_frames, 8, 8)
        rgb, flow = load_features(info.feature_path)
        assert rgb.dtype == flow.dtype == np.float32


def test_intervals_lie_inside_videos_with_apex_and_are_typed_by_duration(tiny: Path) -> None:
    spec = PRESETS["tiny"]
    fs = load_feature_set(tiny, spec.snippet_length, spec.stride)
    intervals = [i for v in fs.intervals.values() for i in v]
    assert {i.type for i in intervals} == {"ME", "MaE"}
    for interval in intervals:
        info = fs.videos[interval.video]
        covered = (fs.num_snippets[interval.video] - 1) * fs.stride + fs.snippet_length  # frames some snippet sees
        assert 0 <= interval.onset <= interval.apex <= interval.offset < min(info.num_frames, covered)
        seconds = (interval.offset - interval.onset + 1) / info.fps
        assert (seconds <= 0.5) == (interval.type == "ME")
        assert seconds >= (0.2 if interval.type == "ME" else 0.6) - 1 / info.fps
    for video_intervals in fs.intervals.values():  # expressions never overlap one another
        spans = sorted((i.onset, i.offset) for i in video_intervals)
        assert all(b_on > a_off for (_, a_off), (b_on, _) in zip(spans, spans[1:]))


def test_feature_statistics_follow_real_i3d_features(tmp_path: Path) -> None:
    spec = resolve_spec("tiny", feature_dim=512)
    root = generate(tmp_path, spec, seed=0)
    fs = load_feature_set(root, spec.snippet_length, spec.stride)
    for stream in (0, 1):
        videos = [load_features(info.feature_path)[stream] for info in fs.videos.values()]
        features = np.concatenate(videos)
        assert features.min() >= 0.0  # post-ReLU
        assert 0.02 <= np.mean(features == 0) <= 0.08  # about 4 % exact zeros
        assert 0.20 <= features.mean() <= 0.26  # about 0.23
        norms = np.linalg.norm(features, axis=1)
        target = 10.3 * math.sqrt(512 / 1024)
        assert abs(np.median(norms) / target - 1) < 0.1
        temporal_std = np.mean([v.std(axis=0).mean() for v in videos])
        assert 0.02 <= temporal_std <= 0.06  # about 0.04: the static face dominates ...
        assert temporal_std < 0.25 * features.std(axis=1).mean()  # ... its spread over dimensions
        centred = [v - v.mean(axis=0) for v in videos]
        lag1 = sum((c[1:] * c[:-1]).sum() for c in centred) / sum((c * c).sum() for c in centred)
        assert lag1 > 0.5  # smooth in time (about 0.8 on long videos; these are 30 snippets)


def test_norm_scales_with_width_and_annotations_do_not_depend_on_it(tmp_path: Path) -> None:
    narrow = generate(tmp_path / "narrow", resolve_spec("tiny", feature_dim=64), seed=3)
    wide = generate(tmp_path / "wide", resolve_spec("tiny", feature_dim=256), seed=3)
    assert (narrow / "annotations.csv").read_bytes() == (wide / "annotations.csv").read_bytes()
    assert (narrow / "videos.csv").read_bytes() == (wide / "videos.csv").read_bytes()
    norm = {d: np.median([np.linalg.norm(load_features(p)[0], axis=1).mean() for p in sorted((root / "features").iterdir())])
            for d, root in ((64, narrow), (256, wide))}
    assert norm[256] / norm[64] == pytest.approx(2.0, rel=0.12)  # sqrt(256 / 64)


def test_only_annotated_snippets_move_when_the_background_is_still(tmp_path: Path) -> None:
    spec = resolve_spec("tiny", feature_dim=256, **QUIET)
    root = generate(tmp_path, spec, seed=0)
    fs = load_feature_set(root, spec.snippet_length, spec.stride)
    moved = {"ME": [], "MaE": []}
    for name, info in fs.videos.items():
        rgb, flow = load_features(info.feature_path)
        touched = np.zeros(len(rgb), dtype=bool)
        for interval in fs.intervals[name]:
            first = max(0, (interval.onset - spec.snippet_length) // spec.stride + 1)
            touched[first:interval.offset // spec.stride + 1] = True
            apex = interval.apex // spec.stride
            moved[interval.type].append((np.abs(rgb[apex] - rgb[~touched].mean(0)).mean() if (~touched).any() else np.nan,
                                         np.abs(flow[apex] - flow[~touched].mean(0)).mean() if (~touched).any() else np.nan))
        for stream in (rgb, flow):
            still = stream[~touched]
            assert np.array_equal(still, np.broadcast_to(still[0], still.shape))  # the face alone: constant
    me, mae = np.nanmean(moved["ME"], axis=0), np.nanmean(moved["MaE"], axis=0)
    assert me[1] > 3 * me[0]  # a micro-expression shows in flow, hardly in RGB
    assert mae[0] > 3 * me[0] and mae[1] > me[1]  # macro-expressions are stronger


def test_me_and_mae_move_the_features_along_different_directions(tmp_path: Path) -> None:
    spec = resolve_spec("tiny", feature_dim=256, num_videos=12, num_subjects=3, **QUIET)
    root = generate(tmp_path, spec, seed=0)
    fs = load_feature_set(root, spec.snippet_length, spec.stride)
    vectors = {"ME": [], "MaE": []}
    for name, info in fs.videos.items():
        _, flow = load_features(info.feature_path)
        for interval in fs.intervals[name]:
            change = flow[interval.apex // spec.stride] - np.median(flow, axis=0)
            vectors[interval.type].append(change / np.linalg.norm(change))
    me, mae = np.array(vectors["ME"]), np.array(vectors["MaE"])
    within = np.mean([np.mean(np.triu(v @ v.T, 1)[np.triu_indices(len(v), 1)]) for v in (me, mae)])
    between = np.mean(me @ mae.T)
    assert within > between + 0.15


def test_ensure_synthetic_generates_once_then_reads_the_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = ensure_synthetic(tmp_path, "tiny", seed=0)
    first = capsys.readouterr()
    assert root.parent == tmp_path and root.name.startswith("tiny-seed0-")
    assert first.err.count("\n") == 1 and "6 videos" in first.err and "MB" in first.err
    stamp = (root / "videos.csv").stat().st_mtime_ns, (root / "features" / "s01_v01.npz").stat().st_mtime_ns
    time.sleep(0.01)
    assert ensure_synthetic(tmp_path, "tiny", seed=0) == root
    assert capsys.readouterr().err == ""
    assert ((root / "videos.csv").stat().st_mtime_ns, (root / "features" / "s01_v01.npz").stat().st_mtime_ns) == stamp
    wider = ensure_synthetic(tmp_path, "tiny", seed=0, feature_dim=32)
    assert wider != root and wider.name.startswith("tiny-seed0-")
    assert ensure_synthetic(tmp_path, "tiny", seed=0, feature_dim=32.0) == wider  # same setting, same folder
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([root.name, wider.name])  # no temporary left


def test_ensure_synthetic_rejects_unknown_names_and_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown synthetic preset 'casme9'; valid presets: small, tiny, casme2, samm, casme3"):
        ensure_synthetic(tmp_path, "casme9")
    with pytest.raises(ValueError, match=r"unknown synthetic setting\(s\) feature_width; valid settings: fps, .*feature_dim"):
        ensure_synthetic(tmp_path, "tiny", feature_width=8)
    with pytest.raises(ValueError, match=r"feature_dim=0: must be > 0"):
        ensure_synthetic(tmp_path, "tiny", feature_dim=0)
    with pytest.raises(ValueError, match=r"feature_dim='wide': expected int"):
        ensure_synthetic(tmp_path, "tiny", feature_dim="wide")
    with pytest.raises(ValueError, match=r"me_max_s=0.8: an ME lasts at most 0.5 s"):
        SyntheticSpec(me_max_s=0.8)
    assert list(tmp_path.iterdir()) == []


def test_a_foreign_folder_in_the_way_and_bad_seeds_are_reported(tmp_path: Path) -> None:
    target = tmp_path / synthetic.cache_name("tiny", 0, PRESETS["tiny"])
    (target / "features").mkdir(parents=True)  # e.g. a copy interrupted by hand, without synthetic.json
    with pytest.raises(ValueError, match=r"exists and is not a complete synthetic set; remove it and retry"):
        ensure_synthetic(tmp_path, "tiny")
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    with pytest.raises(ValueError, match=r"synthetic seed -1: expected a whole number >= 0"):
        ensure_synthetic(tmp_path, "tiny", seed=-1)
    assert ensure_synthetic(tmp_path, "tiny", seed=np.int64(2)).name.startswith("tiny-seed2-")


def test_an_interrupted_generation_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = synthetic_generator.video_features

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(synthetic_generator, "video_features", failing)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic(tmp_path, "tiny")
    assert list(tmp_path.iterdir()) == []


def test_a_concurrent_writer_that_finishes_first_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    original = synthetic.generate
    target = tmp_path / synthetic.cache_name("tiny", 0, PRESETS["tiny"])

    def racing(root: Path, spec: SyntheticSpec, seed: int) -> Path:
        original(target, spec, seed)  # the other process renames its folder into place first
        return original(root, spec, seed)

    monkeypatch.setattr(synthetic_cache, "generate", racing)
    assert ensure_synthetic(tmp_path, "tiny") == target
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert load_feature_set(target, 8).videos
    assert capsys.readouterr().err == ""  # this process generated nothing that was kept


def test_presets_have_the_published_shapes() -> None:
    casme2, samm, casme3 = PRESETS["casme2"], PRESETS["samm"], PRESETS["casme3"]
    assert (casme2.num_subjects, casme2.num_videos, casme2.fps, casme2.snippet_length, casme2.feature_dim) == (22, 98, 30.0, 8, 1024)
    assert (round(casme2.me_per_video * 98), round(casme2.mae_per_video * 98)) == (57, 300)
    assert (samm.fps, samm.snippet_length, samm.stride, samm.num_videos) == (200.0, 32, 32, 147)
    assert (round(samm.me_per_video * 147), round(samm.mae_per_video * 147)) == (159, 340)
    assert casme3.num_videos == 956 and expected_snippets(casme3.frames_per_video, 8, 8) == 325
    assert (round(casme3.me_per_video * 956), round(casme3.mae_per_video * 956)) == (207, 2071)
    assert PRESETS["small"] == SyntheticSpec() and PRESETS["small"].feature_dim == 64
    assert resolve_spec("casme2", feature_dim="128").feature_dim == 128


# sha256 over tiny's (seed 0) features and CSVs, as written before flow_speed_seconds existed
TINY_SEED0_DIGEST = "a2eeeb01524f2795525660480542e36fc7947453aa9df0a77d577893b25c5d28"


def test_flow_speed_off_keeps_the_old_files_and_on_changes_only_flow(tiny: Path, tmp_path: Path) -> None:
    files = _files(tiny)
    digest = hashlib.sha256()
    for name, data in sorted(files.items()):
        if name != "synthetic.json":  # provenance: it lists every setting, the new ones too
            digest.update(name.encode())
            digest.update(data)
    assert digest.hexdigest() == TINY_SEED0_DIGEST
    assert PRESETS["tiny"].flow_speed_seconds == PRESETS["small"].flow_speed_seconds == 0.0
    fast = _files(generate(tmp_path, resolve_spec("tiny", flow_speed_seconds=0.5), seed=0))
    assert fast["annotations.csv"] == files["annotations.csv"]
    old, new = load_features(tiny / "features" / "s01_v01.npz"), load_features(tmp_path / "features" / "s01_v01.npz")
    assert np.array_equal(old[0], new[0]) and not np.array_equal(old[1], new[1])  # RGB untouched, flow changed


def test_flow_speed_scales_the_motion_peak_by_the_rise_time() -> None:
    def flow_peak(rise_frames: int, speed_frames: float) -> float:
        onset = 100
        event = Event("MaE", onset, onset + rise_frames + 4, onset + rise_frames + 40, onset + rise_frames - 1, onset + rise_frames + 9)
        return float(synthetic_generator._frame_profiles(event, 1.0, speed_frames, 3.0)[1].max())  # flow = motion only

    assert flow_peak(15, 15) == pytest.approx(1.0, abs=0.01)  # a rise at the reference speed peaks at 1
    assert flow_peak(30, 15) == pytest.approx(0.5, abs=0.01)  # twice as slow: half the flow
    assert flow_peak(5, 15) == pytest.approx(2.95, abs=0.01)  # three times as fast: about 3
    assert flow_peak(2, 15) == 3.0  # capped
    assert flow_peak(5, 0) == flow_peak(30, 0) == pytest.approx(1.0)  # off: every event peaks at 1
    for preset, fps in (("casme2", 30.0), ("samm", 200.0), ("casme3", 30.0)):  # seconds: same speed at any fps
        assert PRESETS[preset].flow_speed_seconds == 0.5 and PRESETS[preset].fps == fps


def test_flow_speed_settings_validate_their_range() -> None:
    with pytest.raises(ValueError, match=r"flow_speed_seconds=-0.5: must be a finite number >= 0"):
        SyntheticSpec(flow_speed_seconds=-0.5)
    with pytest.raises(ValueError, match=r"flow_speed_cap=0.5: must be >= 1"):
        resolve_spec("casme2", flow_speed_cap="0.5")
    assert resolve_spec("small", flow_speed_seconds="0.25").flow_speed_seconds == 0.25


def test_cli_writes_a_preset_and_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "set"
    assert synthetic.main(["tiny", "--out", str(out), "--seed", "2", "--set", "feature_dim=8"]) == 0
    printed = capsys.readouterr().out
    assert "6 videos, 3 subjects" in printed and " ME, " in printed and " MaE, " in printed and "snippets" in printed
    assert load_feature_set(out, 8).feature_dims == (8, 8)
    assert synthetic.main(["tiny", "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: --out ")
    assert synthetic.main(["nope", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == "error: unknown synthetic preset 'nope'; valid presets: small, tiny, casme2, samm, casme3\n"
    assert synthetic.main(["tiny", "--out", str(tmp_path / "y"), "--set", "fps"]) == 2
    assert "expected key=value" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.slow
def test_casme2_at_full_width_generates_in_well_under_a_minute(tmp_path: Path) -> None:
    started = time.perf_counter()
    root = generate(tmp_path, PRESETS["casme2"], seed=0)
    assert time.perf_counter() - started < 45
    fs = load_feature_set(root, 8, check_values=False)
    assert len(fs.videos) == 98 and fs.feature_dims == (1024, 1024)
    intervals = [i for v in fs.intervals.values() for i in v]
    assert sum(i.type == "ME" for i in intervals) == 57 and sum(i.type == "MaE" for i in intervals) == 300


def test_the_package_runs_as_a_module(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "set"
    done = subprocess.run([sys.executable, "-m", "pwes.synthetic", "tiny", "--out", str(out), "--set", "feature_dim=4"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert load_feature_set(out, 8).feature_dims == (4, 4)
