"""``python -m pwes.evaluate`` on tiny CSVs: the JSON line and the one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pwes.evaluate import main

VIDEOS = "video,subject,num_frames,fps\na,s1,300,30\nb,s2,300,30\nc,s2,100,30\n"
ANNOTATIONS = "video,subject,onset,apex,offset,type\na,s1,10,15,19,ME\na,s1,100,,159,MaE\nb,s2,50,-1,99,MaE\n"
# a: the ME found, a MaE false alarm (the MaE truth missed); b: an ME false alarm (its MaE missed);
# c has neither truth nor proposals
PRED = "video,subject,fold,onset,offset,score,type\na,s1,s1,10,19,0.9,ME\na,s1,s1,200,259,0.8,MaE\nb,s2,s2,0,9,0.7,ME\n"


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"videos": tmp_path / "videos.csv", "gt": tmp_path / "annotations.csv", "pred": tmp_path / "proposals.csv"}
    paths["videos"].write_text(VIDEOS)
    paths["gt"].write_text(ANNOTATIONS)
    paths["pred"].write_text(PRED)
    return paths


def args(files: dict[str, Path], *extra: str) -> list[str]:
    return ["--gt", str(files["gt"]), "--videos", str(files["videos"]), "--pred", str(files["pred"]), *extra]


def test_subprocess_prints_one_json_line_with_the_counts(files: dict[str, Path]) -> None:
    result = subprocess.run([sys.executable, "-m", "pwes.evaluate", *args(files)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    metrics = json.loads(lines[0])
    assert (metrics["tp"], metrics["fp"], metrics["fn"]) == (1, 2, 2)
    assert (metrics["me_tp"], metrics["me_fp"], metrics["me_fn"]) == (1, 1, 0)
    assert (metrics["mae_tp"], metrics["mae_fp"], metrics["mae_fn"]) == (0, 1, 2)
    assert metrics["recall"] == pytest.approx(1 / 3)
    assert metrics["precision"] == pytest.approx(1 / 3)
    assert metrics["f1"] == pytest.approx(1 / 3)
    assert metrics["me_f1"] == metrics["f1_me_0.5"] == pytest.approx(2 / 3)
    # best overall set: {0.9} alone (TP 1, FN 2: F1 1/2); its ME F1 is 1
    assert (metrics["threshold_p"], metrics["f1_me_p"]) == (0.9, 1.0)
    for key in ("me_recall", "me_precision", "mae_recall", "mae_precision", "mae_f1", "f1_me_1.0", "num_videos"):
        assert key in metrics


def test_subprocess_bad_input_exits_2_with_one_error_line(files: dict[str, Path]) -> None:
    files["pred"].write_text("video,onset,offset,score\nzz,0,9,0.5\n")
    result = subprocess.run([sys.executable, "-m", "pwes.evaluate", *args(files)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"error: {files['pred']}:2: unknown video 'zz' (not among the 3 evaluated videos)"]


def test_variant_flags_change_the_counts(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    files["pred"].write_text("video,onset,offset,score,type\nb,50,99,0.5,ME\n")  # right frames, wrong type
    assert main(args(files)) == 0
    assert json.loads(capsys.readouterr().out)["tp"] == 0
    assert main(args(files, "--class-agnostic")) == 0
    assert json.loads(capsys.readouterr().out)["tp"] == 1


def test_missing_type_column_is_typed_by_duration(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    files["pred"].write_text("video,onset,offset,score\na,10,19,0.9\nb,50,99,0.5\n")  # 10 frames -> ME, 50 -> MaE
    assert main(args(files)) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert (metrics["me_tp"], metrics["mae_tp"], metrics["fp"]) == (1, 1, 0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("video,onset,offset,score\nzz,0,9,0.5\n", ":2: unknown video 'zz'"),
        ("video,onset,offset,score\na,0,9,0.5\na,20,10,0.5\n", ":3: onset 20 > offset 10"),
        ("video,onset,offset,score\na,ten,19,0.5\n", ":2: onset 'ten' is not a number"),
        ("video,onset,offset,score\na,0,9,nan\n", ":2: score 'nan' is not a finite number"),
        ("video,onset,offset,score\na,0,9,high\n", ":2: score 'high' is not a number"),
        ("", ":1: empty file"),
        ("video,onset,score\na,0,0.5\n", ":1: missing column(s) offset"),
        ("video,onset,offset,score\na,0,9\n", ":2: 3 fields, expected 4"),
        ("video,onset,offset,score,type\na,0,9,0.5,micro\n", ":2: unknown type 'micro'"),
        ("video,onset,offset,score\na,0,300,0.5\n", ":2: offset 300 beyond video 'a' of 300 frames"),
        ("video,onset,offset,score\na,2.5,9,0.5\n", ":2: onset '2.5' is not a whole frame number"),
    ],
)
def test_bad_proposals_exit_2_naming_file_and_line(files: dict[str, Path], capsys: pytest.CaptureFixture[str], content: str, message: str) -> None:
    files["pred"].write_text(content)
    assert main(args(files)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"error: {files['pred']}{message}")


@pytest.mark.parametrize(
    ("which", "content", "message"),
    [
        ("gt", "video,subject,onset,apex,offset,type\nq,s1,0,,9,ME\n", "annotations.csv:2: video 'q' is not listed"),
        ("gt", "video,subject,onset,offset,type\n", "annotations.csv:1: missing column(s) apex"),
        ("videos", "video,subject,num_frames,fps\na,s1,300,fast\n", "videos.csv:2: fps 'fast' is not a number"),
        ("videos", "", "videos.csv:1: empty file"),
        ("gt", ANNOTATIONS + "a,s1,10,15,19,ME\n", "annotations.csv:5: duplicates line 2 (ME [10, 19] of video 'a')"),
        ("gt", ANNOTATIONS + "b,s2,50,60,99,MaE\n", "annotations.csv:5: duplicates line 4 (MaE [50, 99] of video 'b')"),
        ("videos", "video,subject,num_frames,fps\na,s1,300,30\nb,s/2,300,30\nc,s2,100,30\n", "videos.csv:3: subject id 's/2' contains '/'"),
    ],
)
def test_bad_ground_truth_exits_2(files: dict[str, Path], capsys: pytest.CaptureFixture[str], which: str, content: str, message: str) -> None:
    files[which].write_text(content)
    assert main(args(files)) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and message in line


def test_missing_file_and_bad_setting_exit_2(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    files["pred"].unlink()
    assert main(args(files)) == 2
    assert capsys.readouterr().err.strip() == f"error: {files['pred']}: file not found"
    files["pred"].write_text(PRED)
    assert main(args(files, "--iou-threshold", "1.5")) == 2
    assert "evaluation.iou_threshold must be in (0, 1]" in capsys.readouterr().err


def test_duplicated_ground_truth_row_is_refused_by_the_command(files: dict[str, Path]) -> None:
    """A repeated row would be a second truth no proposal can match: a perfect run would score recall 0.5."""
    files["gt"].write_text("video,subject,onset,apex,offset,type\na,s1,10,15,19,ME\na,s1,10,,19,ME\n")
    result = subprocess.run([sys.executable, "-m", "pwes.evaluate", *args(files)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {files['gt']}:3: duplicates line 2 (ME [10, 19] of video 'a'); list each expression once "
        "(a repeated row is a second ground truth that no proposal can match)"
    ]


def test_no_ground_truth_at_all_is_a_loud_warning(files: dict[str, Path]) -> None:
    files["gt"].write_text("video,subject,onset,apex,offset,type\n")
    result = subprocess.run([sys.executable, "-m", "pwes.evaluate", *args(files)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{files['gt']}: no annotation rows: there is no ground truth" in result.stderr
    assert json.loads(result.stdout)["num_ground_truth"] == 0


def test_lgsnet_predictions_are_rounded_and_score_like_the_csv(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    """The same three proposals as PRED, written as LGSNet's test_detection/*.txt (tabs, no
    header, fractional frames): the same figures. 9.6 -> 10, 18.5 -> 19, 259.4 -> 259."""
    detection = tmp_path / "test_detection"
    detection.mkdir()
    (detection / "s1.txt").write_text("a\t9.6\t18.5\t0.9\tME\na\t200.2\t259.4\t0.8\tmacro\n\n")
    (detection / "s2.txt").write_text("b\t-0.4\t9.2\t0.7\n")  # no type: 10 frames at 30 fps is an ME
    assert main(args(files)) == 0
    expected = json.loads(capsys.readouterr().out)
    for pred in (detection, detection / "s1.txt"):
        files["pred"] = pred
        assert main(args(files, "--pred-format", "lgsnet")) == 0
        got = json.loads(capsys.readouterr().out)
        if pred == detection:
            assert got == expected
    assert (got["tp"], got["fp"], got["fn"]) == (1, 1, 2)  # s1.txt alone: b's ME false alarm is gone
    # past the video's end: clipped and said so; outside it entirely: refused
    (detection / "s2.txt").write_text("b\t290\t310.7\t0.7\tMaE\n")
    files["pred"] = detection
    assert main(args(files, "--pred-format", "lgsnet")) == 0
    assert "note: 1 LGSNet interval(s) reached past their video and were clipped to it" in capsys.readouterr().err
    for line, message in (
        ("b\t400\t410\t0.7", "interval [400, 410] lies outside video 'b' of 300 frames (0..299)"),
        ("b\t1\t2", "3 fields, expected 4 or 5 (video, onset, offset, score[, type]) separated by tabs"),
        ("b\t1\t2\t0.5\tblink", "unknown type 'blink', expected ME, MaE, micro or macro"),
        ("zz\t1\t2\t0.5", "unknown video 'zz'"),
    ):
        (detection / "s2.txt").write_text(line + "\n")
        assert main(args(files, "--pred-format", "lgsnet")) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {detection / 's2.txt'}:1: ") and message in err and err.count("\n") == 1, err


def test_subjects_scores_one_fold(files: dict[str, Path], capsys) -> None:
    assert main(args(files, "--subjects", "s2")) == 0
    got = json.loads(capsys.readouterr().out)
    # videos b and c only: b's ME proposal is a false alarm and its MaE is missed; a's rows are left out
    assert (got["tp"], got["fp"], got["fn"], got["num_videos"]) == (0, 1, 1, 2)
    assert main(args(files, "--subjects", "s1,s2")) == 0
    assert json.loads(capsys.readouterr().out)["tp"] == 1
    assert main(args(files, "--subjects", "s9")) == 2
    assert f"error: --subjects 's9': unknown subject 's9' (subjects in {files['videos']}: s1, s2)" in capsys.readouterr().err
