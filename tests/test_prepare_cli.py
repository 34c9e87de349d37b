"""``python -m pwes.prepare`` as a user runs it: the summary on success, ``error: ...`` and exit
code 2 on bad input (wrong sheet, missing column, features that do not fit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import openpyxl

from pwes.data.layout import load_feature_set


def write_xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def lgsnet_pair(folder: Path, video: str, n: int, frame_cnt: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stream in ("rgb", "flow"):
        np.savez(folder / f"{video}-{stream}.npz", feature=np.ones((1, n, 4), np.float32), frame_cnt=np.array(frame_cnt))


def prepare(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pwes.prepare", *map(str, args)], capture_output=True, text=True, timeout=60
    )


CASME2_ROWS = [
    [1, "anger1_1", 11, 15, 20, "4", "negative", "macro-expression", ""],
    [1, "anger1_2", 31, 33, 0, "4", "negative", "micro-expression", ""],
    [2, "anger1_1", 3, 4, 6, "4", "negative", "micro-expression", ""],
]


def casme2_workbook(path: Path, expression_sheet: str = "CASFEcode_final") -> Path:
    return write_xlsx(path, {
        expression_sheet: CASME2_ROWS,
        "naming rule1": [[15, "s15", 1], [16, "s16", 2]],
        "naming rule2": [[401, "anger1"]],
    })


def test_casme2_summary_and_layout(tmp_path):
    book = casme2_workbook(tmp_path / "CASME_sq_gt.xlsx")
    lgsnet_pair(tmp_path / "feats", "15_0401girlcrashing", 8, 64)
    lgsnet_pair(tmp_path / "feats", "15_0502extra", 3, 24)

    result = prepare("casme2", "--annotations", book, "--features", tmp_path / "feats", "--out", tmp_path / "set")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "videos: 2 from 1 subjects; 1 without annotations" in out
    assert "expressions: 2 (ME 1, MaE 1) from 3 annotation rows" in out
    assert "1 x offset not annotated: offset set to apex + (apex - onset) (--unknown-offset mirror)" in out
    assert "annotated videos with no features: 1 (1 row left out; --strict refuses them)\n    16_0401 (1 row)" in out
    assert "annotated subjects with no features at all (left out): 1\n    s16" in out
    assert "videos with features but no annotations (kept, expression-free): 1\n    15_0502extra" in out
    assert (tmp_path / "set" / "annotations.csv").read_text().splitlines()[1:] == [
        "15_0401girlcrashing,s15,10,14,19,MaE",
        "15_0401girlcrashing,s15,30,32,34,ME",
    ]
    assert load_feature_set(tmp_path / "set", 8).feature_dims == (4, 4)


def test_wrong_sheet_is_a_one_line_error(tmp_path):
    book = casme2_workbook(tmp_path / "gt.xlsx", expression_sheet="Sheet1")
    lgsnet_pair(tmp_path / "feats", "15_0401girlcrashing", 8, 64)

    result = prepare("casme2", "--annotations", book, "--features", tmp_path / "feats", "--out", tmp_path / "set")

    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "no expression sheet 'CASFEcode_final' or 'CASMEcode_final' (sheets found: 'Sheet1', 'naming rule1', 'naming rule2')" in result.stderr
    assert not (tmp_path / "set").exists()
    named = prepare("casme2", "--annotations", book, "--features", tmp_path / "feats", "--out", tmp_path / "set", "--sheet", "Sheet1")
    assert named.returncode == 0, named.stderr


def test_missing_column_lists_the_columns_found(tmp_path):
    book = write_xlsx(tmp_path / "samm.xlsx", {"FACS_Movement_Only": [
        ["free text"],
        ["Subject", "Filename", "Onset", "Apex", "Offset", "Action Units"],
        [6, "006_1_1", 10, 12, 40, "12"],
    ]})
    (tmp_path / "feats").mkdir()

    result = prepare("samm", "--annotations", book, "--features", tmp_path / "feats", "--out", tmp_path / "set")

    assert result.returncode == 2
    assert result.stderr.startswith("error: samm.xlsx[FACS_Movement_Only]: no header row with columns filename")
    assert "type (Type)" in result.stderr
    assert "row (2) has: 'Subject', 'Filename', 'Onset', 'Apex', 'Offset', 'Action Units'" in result.stderr


def test_features_that_do_not_fit_the_snippets_name_the_file(tmp_path):
    book = casme2_workbook(tmp_path / "gt.xlsx")
    lgsnet_pair(tmp_path / "feats", "15_0401girlcrashing", 29, 64)
    args = ("casme2", "--annotations", book, "--features", tmp_path / "feats", "--out", tmp_path / "set")

    result = prepare(*args)
    assert result.returncode == 2
    assert "15_0401girlcrashing-rgb.npz / 15_0401girlcrashing-flow.npz: 29 snippets, but 64 frames" in result.stderr

    fitted = prepare(*args, "--stride", "2")
    assert fitted.returncode == 0, fitted.stderr
    assert "(snippet length 8, stride 2, fps 30)" in fitted.stdout


def test_bad_option_values_exit_2(tmp_path):
    book = casme2_workbook(tmp_path / "gt.xlsx")
    lgsnet_pair(tmp_path / "feats", "15_0401girlcrashing", 8, 64)
    result = prepare("casme2", "--annotations", book, "--features", tmp_path / "feats", "--out", tmp_path / "set",
                     "--unknown-offset", "guess")
    assert result.returncode == 2
    assert result.stderr == "error: --unknown-offset 'guess': expected one of mirror, apex, drop or apex+N (e.g. apex+20)\n"


SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type", "Action Units", "Notes"]


def samm_files(tmp_path: Path) -> tuple[Path, Path]:
    """A SAMM-LV-like workbook (onset 0, apex -1, one filename on two rows, a subject without
    features) and combined feature files for two of its videos."""
    book = write_xlsx(tmp_path / "SAMM_LONG_VIDEOS.xlsx", {"FACS_Movement_Only": [
        ["SAMM Long Videos"], SAMM_HEADER,
        [11, "011_6_10", 1, 0, 3323, 4123.4, None, "Macro", "12", ""],
        [11, "011_6_1", 1, 5000, -1, 5100, None, "Macro", "12", ""],
        [37, "037_4_1", 1, 200, 205, 210, None, "Micro - 1/2", "4", ""],
        [37, "037_4_1", 1, 900, 1000, 1500, None, "Macro", "12", ""],
        [40, "040_1_1", 1, 10, 12, 14, None, "Micro - 1/2", "1", ""],
    ]})
    feats = tmp_path / "feats"
    feats.mkdir()
    for video, frames in (("011_6", 5200), ("037_4", 1600)):
        n = (frames - 32) // 32 + 1
        np.savez(feats / f"{video}.npz", rgb=np.ones((n, 4), np.float32), flow=np.ones((n, 4), np.float32), frame_cnt=np.array(frames))
    return book, feats


def test_samm_summary_reports_onset_zero_apexes_and_the_repeated_filename(tmp_path):
    book, feats = samm_files(tmp_path)
    result = prepare("samm", "--annotations", book, "--features", feats, "--out", tmp_path / "set")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "expressions: 4 (ME 1, MaE 3) from 5 annotation rows" in out
    assert "1 x onset 0 (under way when the video starts): onset set to the first frame (--zero-onset first-frame); e.g. " in out
    assert "1 x apex not annotated (0 or -1 in the sheet): written empty" in out
    assert "warning: 037_4_1 names two different rows" in out
    assert "annotated subjects with no features at all (left out): 1\n    040" in out

    old = prepare("samm", "--annotations", book, "--features", feats, "--out", tmp_path / "old", "--zero-onset", "drop")
    assert old.returncode == 0, old.stderr
    assert "expressions: 3 (ME 1, MaE 2) from 5 annotation rows" in old.stdout


def test_strict_and_wrong_format_exit_2_with_one_line(tmp_path):
    book, feats = samm_files(tmp_path)
    strict = prepare("samm", "--annotations", book, "--features", feats, "--out", tmp_path / "set", "--strict")
    assert strict.returncode == 2 and strict.stdout == ""
    assert strict.stderr == (
        "error: --strict: 1 annotated video(s) have no feature file: 040_1 (1 row); whole subjects without features: 040 "
        "(without --strict they are left out and listed in the summary)\n"
    )
    lgsnet = prepare("samm", "--annotation-format", "lgsnet", "--annotations", book, "--features", feats, "--out", tmp_path / "set")
    assert lgsnet.returncode == 2
    assert lgsnet.stderr.startswith(f"error: {book}: is an .xlsx workbook, not a CSV text file; --annotation-format lgsnet")
    assert len(lgsnet.stderr.splitlines()) == 1
    assert not (tmp_path / "set").exists()


def stride2_set(tmp_path: Path) -> Path:
    """A CAS(ME)^2 set prepared from stride-2 LGSNet-style features (64 frames: 29 snippets)."""
    book = casme2_workbook(tmp_path / "CASME_sq_gt.xlsx")
    rng = np.random.default_rng(0)
    (tmp_path / "feats").mkdir()
    for video in ("15_0401girlcrashing", "16_0401girlcrashing"):
        for stream in ("rgb", "flow"):
            np.savez(tmp_path / "feats" / f"{video}-{stream}.npz", feature=rng.random((1, 29, 4), dtype=np.float32), frame_cnt=np.array(64))
    result = prepare("casme2", "--annotations", book, "--features", tmp_path / "feats", "--out", tmp_path / "set", "--stride", "2")
    assert result.returncode == 0, result.stderr
    return tmp_path / "set"


def train(home: Path, *overrides: str) -> subprocess.CompletedProcess:
    args = ["dataset=casme2", "fold=none", "logger=none", "trainer.max_steps=2", "dataset.pretrain_steps=1", "trainer.enable_progress_bar=false", *overrides]
    env = {**os.environ, "PWES_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "pwes.train", *args], capture_output=True, text=True, timeout=300, cwd=home, env=env)


def test_training_reads_the_snippet_settings_a_prepared_set_records(tmp_path):
    """Before: `prepare --stride 2` then training failed with "29 snippets, but ... stride 8 give
    8" and never said dataset.stride=2. Now the recorded stride is used, and an explicit
    conflicting setting is refused naming the override."""
    import torch
    import yaml

    from pwes.data.recorded import read_recorded

    root = stride2_set(tmp_path)
    feature_file = root / "features" / "15_0401girlcrashing.npz"
    assert read_recorded(feature_file) == {"snippet_length": 8, "stride": 2, "fps": 30.0}
    proc = train(tmp_path, f"dataset.root={root}", "run_name=recorded")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "outputs/runs/casme2/recorded"
    assert torch.load(run / "model/checkpoints/last.ckpt", map_location="cpu", weights_only=False)["pwes"]["stride"] == 2
    assert yaml.safe_load((run / "config.yaml").read_text())["dataset"]["stride"] == 2  # config.yaml says what was used
    assert f"snippet settings from {feature_file}: dataset.stride=2 (the config's default is 8)" in proc.stderr + proc.stdout

    proc = train(tmp_path, f"dataset.root={root}", "dataset.stride=8", "run_name=explicit")
    assert proc.returncode == 2
    assert (f"error: dataset.stride=8 conflicts with {feature_file}, which records stride 2 (the features were cut so); "
            "drop dataset.stride=8 to read the set with the settings it records") in proc.stderr
    # a set prepared before the files recorded it: import.json's stride is used
    for path in (root / "features").glob("*.npz"):
        with np.load(path) as data:
            np.savez(path, rgb=data["rgb"], flow=data["flow"])
    folds = subprocess.run([sys.executable, "-m", "pwes.folds", "dataset=casme2", f"dataset.root={root}"], capture_output=True, text=True, timeout=120)
    assert folds.returncode == 0 and folds.stdout.strip() == "s15,s16", folds.stderr


def test_lgsnet_tree_with_separate_stream_folders(tmp_path):
    """LGSNet keeps the streams in rgb_feature/ and flow_feature/ with the same file names; before,
    prepare paired nothing ("no CAS(ME)^2 feature files found")."""
    from pwes.data.layout import load_features

    book = casme2_workbook(tmp_path / "CASME_sq_gt.xlsx")
    tree = tmp_path / "casme2"
    rng = np.random.default_rng(0)
    arrays = {}
    for folder in ("rgb_feature", "flow_feature"):
        (tree / folder).mkdir(parents=True)
        arrays[folder] = rng.random((1, 8, 4), dtype=np.float32)
        np.savez(tree / folder / "15_0401girlcrashing.npz", feature=arrays[folder], frame_cnt=np.array(64))
    for features in (tree, tree / "rgb_feature"):  # the tree, or its rgb folder beside flow_feature/
        out = tmp_path / f"set-{features.name}"
        result = prepare("casme2", "--annotations", book, "--features", features, "--out", out)
        assert result.returncode == 0, result.stderr
        rgb, flow = load_features(out / "features" / "15_0401girlcrashing.npz")
        np.testing.assert_array_equal(rgb, arrays["rgb_feature"][0])
        np.testing.assert_array_equal(flow, arrays["flow_feature"][0])
        assert f"flow features from {tree / 'flow_feature'}" in result.stdout
    # folders named otherwise: --flow-features names the flow one
    (tree / "rgb_feature").rename(tmp_path / "i3d_rgb")
    (tree / "flow_feature").rename(tmp_path / "i3d_flow")
    result = prepare("casme2", "--annotations", book, "--features", tmp_path / "i3d_rgb", "--flow-features", tmp_path / "i3d_flow", "--out", tmp_path / "named")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(load_features(tmp_path / "named" / "features" / "15_0401girlcrashing.npz")[1], arrays["flow_feature"][0])
    (tmp_path / "i3d_flow" / "15_0401girlcrashing.npz").rename(tmp_path / "i3d_flow" / "15_0402other.npz")
    result = prepare("casme2", "--annotations", book, "--features", tmp_path / "i3d_rgb", "--flow-features", tmp_path / "i3d_flow", "--out", tmp_path / "broken")
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'i3d_rgb' / '15_0401girlcrashing.npz'}: no matching flow file for video '15_0401girlcrashing' in {tmp_path / 'i3d_flow'}\n"
