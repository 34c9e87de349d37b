"""Importers of the real datasets: tiny workbooks and feature files in each official format,
built here, imported, and the written layout checked row by row (frames 1-based -> 0-based)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from pwes.datasets import DatasetImportError, import_dataset
from pwes.datasets import casme2, casme3, samm
from pwes.datasets.common import RawExpression, parse_type
from pwes.datasets.frames import FrameRules, normalize
from pwes.datasets.report import ImportReport
from pwes.datasets.tables import Table
from pwes.data.layout import load_feature_set, load_features

WIDTH = 8


# ---------------------------------------------------------------------------- builders


def write_xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def features(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, WIDTH), dtype=np.float32)


def lgsnet_pair(folder: Path, video: str, n: int, frame_cnt: int | None, seed: int = 0) -> np.ndarray:
    """``<video>-rgb.npz``/``-flow.npz`` with key ``feature`` (1, n, D); returns the rgb rows."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = features(n, seed)
    for stream, array in (("rgb", rgb), ("flow", rgb + 1)):
        extra = {} if frame_cnt is None else {"frame_cnt": np.array(frame_cnt)}
        np.savez(folder / f"{video}-{stream}.npz", feature=array[None], video_name=np.array(video), **extra)
    return rgb


def npy_pair(folder: Path, video: str, n: int, sep: str = "-", seed: int = 0) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    rgb = features(n, seed)
    np.save(folder / f"{video}{sep}rgb.npy", rgb)
    np.save(folder / f"{video}{sep}flow.npy", rgb + 1)
    return rgb


def combined_npz(path: Path, n: int, seed: int = 0, **extra) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = features(n, seed)
    np.savez(path, rgb=rgb, flow=rgb + 1, **{k: np.array(v) for k, v in extra.items()})
    return rgb


def frame_folder(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        (folder / f"img{i}.jpg").touch()


def csv_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


CASME2_EXPRESSIONS = [
    [1, "anger1_1", 11, 15, 20, "4+7", "negative", "macro-expression", "angry"],
    [1, "anger1_2", 31, 33, 0, "4", "negative", "micro-expression", "angry"],  # offset unknown
    [1, "disgust1_1", 5, 6, 9, "9", "negative", "micro-expression", "disgust"],
    [2, "anger1_1", 3, 4, 6, "4", "negative", "micro-expression", "angry"],  # s16: no features
    [1, "happy9_1", 3, 4, 6, "12", "positive", "macro-expression", "happy"],  # not in naming rule2
    [1, "anger1_3", 60, 62, 70, "4", "negative", "macro-expression", "angry"],  # runs past frame 63
    [1, "anger1_4", 70, 72, 75, "4", "negative", "macro-expression", "angry"],  # starts after the video
]


def casme2_workbook(path: Path, expressions: list[list] = CASME2_EXPRESSIONS, rule1=None) -> Path:
    return write_xlsx(path, {
        "CASFEcode_final": expressions,
        "naming rule1": rule1 or [[15, "s15", 1], [16, "s16", 2]],
        "naming rule2": [["code", "name"], [401, "anger1"], ["disgust1", "0101"], [502, "happy1"]],
    })


# ---------------------------------------------------------------------------- CAS(ME)^2


def test_casme2_workbook_with_lgsnet_features(tmp_path):
    book = casme2_workbook(tmp_path / "CASME_sq_gt.xlsx")
    feats = tmp_path / "feats"
    rgb = lgsnet_pair(feats, "15_0401girlcrashing", 8, frame_cnt=64, seed=1)
    lgsnet_pair(feats / "s15", "15_0101disgustingteeth", 5, frame_cnt=40)
    lgsnet_pair(feats, "15_0502extra", 3, frame_cnt=24)
    lgsnet_pair(feats, "calibration", 3, frame_cnt=24)
    out = tmp_path / "set"

    report = import_dataset("casme2", [book], feats, out)

    assert csv_lines(out / "videos.csv") == [
        "video,subject,num_frames,fps",
        "15_0101disgustingteeth,s15,40,30",
        "15_0401girlcrashing,s15,64,30",
        "15_0502extra,s15,24,30",
    ]
    assert csv_lines(out / "annotations.csv") == [
        "video,subject,onset,apex,offset,type",
        "15_0101disgustingteeth,s15,4,5,8,ME",
        "15_0401girlcrashing,s15,10,14,19,MaE",
        "15_0401girlcrashing,s15,30,32,34,ME",  # offset 0 -> apex + (apex - onset)
        "15_0401girlcrashing,s15,59,61,63,MaE",  # offset 69 clipped to the last frame
    ]
    written_rgb, written_flow = load_features(out / "features" / "15_0401girlcrashing.npz")
    np.testing.assert_array_equal(written_rgb, rgb)
    np.testing.assert_array_equal(written_flow, rgb + 1)
    feature_set = load_feature_set(out, 8, 8)
    assert feature_set.num_snippets == {"15_0101disgustingteeth": 5, "15_0401girlcrashing": 8, "15_0502extra": 3}
    assert feature_set.feature_dims == (WIDTH, WIDTH)

    assert report.rows_read == 7
    assert report.type_counts == {"ME": 2, "MaE": 2}
    assert report.repaired["offset not annotated: offset set to apex + (apex - onset) (--unknown-offset mirror)"] == 1
    assert report.repaired["interval runs past the video's last frame: offset clipped to it"] == 1
    assert report.dropped == {
        "video name not in sheet 'naming rule2'": 1,
        "interval starts after the video's last frame": 1,
    }
    assert report.missing_features == {"16_0401": 1}
    assert report.unannotated_videos == ["15_0502extra"]
    assert report.ignored_files == [f"{feats / 'calibration-rgb.npz'} / calibration-flow.npz"]
    assert (report.videos, report.subjects) == (3, 1)
    assert report.length_sources == {"feature files (frame_cnt)": 3}
    assert (out / "import.json").is_file()


def test_casme2_unknown_offset_rule_drop_and_subject_numbers_as_folders(tmp_path):
    rows = [
        [15, "anger1_1", 11, 15, 20, "", "", "macro-expression", ""],
        [15, "anger1_2", 31, 33, 0, "", "", "micro-expression", ""],
    ]
    book = casme2_workbook(tmp_path / "gt.xlsx", rows, rule1=[["s15", 1], [16, "s16", 2]])
    feats = tmp_path / "feats"
    lgsnet_pair(feats, "15_0401girlcrashing", 8, frame_cnt=64)

    report = import_dataset("casme2", [book], feats, tmp_path / "set", unknown_offset="drop")

    assert csv_lines(tmp_path / "set" / "annotations.csv")[1:] == ["15_0401girlcrashing,s15,10,14,19,MaE"]
    assert report.dropped == {"offset not annotated (--unknown-offset drop)": 1}
    assert any("read as folder numbers" in note for note in report.notes)


def test_casme2_wrong_sheet_names_sheets_found(tmp_path):
    book = write_xlsx(tmp_path / "gt.xlsx", {"Sheet1": CASME2_EXPRESSIONS, "naming rule1": [["s15", 1]]})
    lgsnet_pair(tmp_path / "feats", "15_0401girlcrashing", 8, frame_cnt=64)
    expected = r"no expression sheet 'CASFEcode_final' or 'CASMEcode_final' \(sheets found: 'Sheet1', 'naming rule1'\)"
    with pytest.raises(DatasetImportError, match=expected):
        import_dataset("casme2", [book], tmp_path / "feats", tmp_path / "set")


def test_casme2_expression_sheet_too_narrow(tmp_path):
    book = casme2_workbook(tmp_path / "gt.xlsx", [[1, "anger1_1", 11, 15, 20]])
    lgsnet_pair(tmp_path / "feats", "15_0401girlcrashing", 8, frame_cnt=64)
    with pytest.raises(DatasetImportError, match=r"gt.xlsx\[CASFEcode_final\]: 5 columns, expected at least 8"):
        import_dataset("casme2", [book], tmp_path / "feats", tmp_path / "set")


def test_naming_sheets_either_column_order():
    table = Table(Path("gt.xlsx"), "naming rule2", [("name", "code"), ("anger1", 401), ("0101", "Disgust1"), (None, None)])
    assert casme2.read_video_rule(table) == {"anger1": "0401", "disgust1": "0101"}
    subjects = Table(Path("gt.xlsx"), "naming rule1", [(15, "s15", 1), ("s16", 2), ("s17", None), (19, "S19")])
    assert casme2.read_subject_rule(subjects) == ({1: 15, 2: 16}, {15, 16, 17, 19})
    ambiguous = Table(Path("gt.xlsx"), "naming rule1", [(1, "s15", 2)])
    with pytest.raises(DatasetImportError, match=r"gt.xlsx\[naming rule1\] row 1: cannot tell which of \[1, 2\]"):
        casme2.read_subject_rule(ambiguous)


def test_video_name_parsers():
    assert casme2.parse_video_name("s15/15_0401girlcrashing") == casme2.parse_video_name("15_0401girlcrashing")
    assert casme2.parse_video_name("15_0401girlcrashing").key == "15_0401"
    assert casme2.parse_video_name("calibration") is None
    assert samm.parse_video_name("6_1").key == "006_1" and samm.parse_video_name("006_1").subject == "006"
    assert samm.parse_video_name("006_1_2") is None
    assert casme3.parse_video_name("spno1/a/color").video == "spNO.1_a"
    assert casme3.parse_video_name("spNO.1/a/depth") is None


# ---------------------------------------------------------------------------- SAMM-LV


SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type", "Action Units", "Notes"]


def samm_workbook(path: Path, header: list[str] = SAMM_HEADER) -> Path:
    return write_xlsx(path, {"FACS_Movement_Only": [
        ["SAMM Long Videos: FACS coding of movements"],
        [],
        ["Coded by two FACS coders.", None, "Onsets and offsets are frame numbers."],
        header,
        [6, "006_1_1", 1, 100.4, -1, 140.6, 41, "Macro", "12", ""],
        [6, "006_1_2", 1, 200, 210, 260, 61, "Micro - 1/2", "4", "brief"],
        [7, "007_3_1", 2, 10, 12, 20, 11, "Micro - 1/2", "1+2", ""],
        [6, "006_1_3", 1, 300, 305, 310, 11, "Blink", "45", ""],
        [None, None, None, None, None, None, None, None, None, "end of sheet"],
    ]})


def test_samm_workbook_with_npy_pairs_and_frames_folder(tmp_path):
    book = samm_workbook(tmp_path / "SAMM_LONG_VIDEOS.xlsx")
    feats, frames = tmp_path / "feats", tmp_path / "frames"
    npy_pair(feats, "006_1", 10, sep="_")
    npy_pair(feats, "006_2", 3)
    frame_folder(frames / "006_1", 330)
    frame_folder(frames / "006_2", 100)
    out = tmp_path / "set"

    report = import_dataset("samm", [book], feats, out, frames_dir=frames)

    assert csv_lines(out / "videos.csv")[1:] == ["006_1,006,330,200", "006_2,006,100,200"]
    assert csv_lines(out / "annotations.csv")[1:] == [
        "006_1,006,99,,140,MaE",  # 100.4 -> 100 -> 99, apex -1 -> empty, 140.6 -> 141 -> 140
        "006_1,006,199,209,259,ME",
    ]
    assert load_feature_set(out, 32).num_snippets == {"006_1": 10, "006_2": 3}
    assert report.repaired["fractional frame numbers rounded (onset down, offset up, apex to nearest)"] == 1
    assert report.dropped == {"unknown expression type": 1}
    assert report.examples["unknown expression type"] == ["SAMM_LONG_VIDEOS.xlsx[FACS_Movement_Only] row 8 ('Blink')"]
    assert report.missing_features == {"007_3": 1}
    assert report.unannotated_videos == ["006_2"]
    assert report.length_sources == {"frames folder": 2}
    assert report.settings["snippet_length"] == 32 and report.settings["stride"] == 32


def test_samm_missing_column_lists_columns_found(tmp_path):
    book = samm_workbook(tmp_path / "samm.xlsx", header=[h for h in SAMM_HEADER if h != "Type"])
    npy_pair(tmp_path / "feats", "006_1", 10)
    with pytest.raises(DatasetImportError, match=r"samm.xlsx\[FACS_Movement_Only\]: no header row .* row \(4\) has: 'Subject', 'Filename'"):
        import_dataset("samm", [book], tmp_path / "feats", tmp_path / "set", frames_dir=tmp_path)


# ---------------------------------------------------------------------------- CAS(ME)^3


def casme3_workbooks(folder: Path) -> tuple[Path, Path]:
    me = write_xlsx(folder / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", {"label": [
        ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"],
        ["spNO.1", "a", 11, 13, 16, "4", 3, "disgust"],
        ["spNO.2", "b", 5, 7, 9, "12", 1, "happy"],
    ]})
    mae = write_xlsx(folder / "cas(me)3_part_A_MaE_label.xlsx", {"Sheet1": [
        ["CAS(ME)3 part A macro-expressions"],
        ["sub", "seq", "onset", "apex", "offset", "emotion"],
        [1, "a", 30, 35, 60, "happy"],
    ]})
    return me, mae


def test_casme3_typed_workbooks_with_nested_combined_features(tmp_path):
    me, mae = casme3_workbooks(tmp_path)
    feats = tmp_path / "feats"
    combined_npz(feats / "spNO.1" / "a.npz", 8, frame_cnt=70)
    out = tmp_path / "set"

    report = import_dataset("casme3", [f"ME={me}", f"MaE={mae}"], feats, out)

    assert csv_lines(out / "videos.csv")[1:] == ["spNO.1_a,spNO.1,70,30"]
    assert csv_lines(out / "annotations.csv")[1:] == ["spNO.1_a,spNO.1,10,12,15,ME", "spNO.1_a,spNO.1,29,34,59,MaE"]
    assert report.missing_features == {"spNO.2_b": 1}
    assert report.type_counts == {"ME": 1, "MaE": 1}
    assert not report.repaired


def test_casme3_without_types_falls_back_to_duration(tmp_path):
    me, mae = casme3_workbooks(tmp_path)
    combined_npz(tmp_path / "feats" / "spNO.1_a.npz", 8, frame_cnt=70)
    report = import_dataset("casme3", [me, mae], tmp_path / "feats", tmp_path / "set")
    # 6 frames (0.2 s) -> ME; 31 frames (1.03 s) -> MaE
    assert csv_lines(tmp_path / "set" / "annotations.csv")[1:] == ["spNO.1_a,spNO.1,10,12,15,ME", "spNO.1_a,spNO.1,29,34,59,MaE"]
    assert report.repaired["no type given: typed by duration (ME when <= 0.5 s)"] == 3


def test_casme3_without_header_lists_columns_found(tmp_path):
    book = write_xlsx(tmp_path / "labels.xlsx", {"Sheet1": [["notes"], ["Name", "Start", "End"], ["x", 1, 2]]})
    combined_npz(tmp_path / "feats" / "spNO.1_a.npz", 8, frame_cnt=70)
    with pytest.raises(DatasetImportError) as info:
        import_dataset("casme3", [book], tmp_path / "feats", tmp_path / "set")
    message = str(info.value)
    assert "labels.xlsx[Sheet1]: no header row with columns subject" in message
    assert "the most header-like row (2) has: 'Name', 'Start', 'End'" in message


# ---------------------------------------------------------------------------- LGSNet CSV


def test_lgsnet_csv_with_lengths_from_frame_num(tmp_path):
    annotations = tmp_path / "casme2_annotation.csv"
    with open(annotations, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "video", "type", "type_idx", "startFrame", "endFrame", "frame_num", "length"])
        writer.writerow([1, "/data/rawpic/s15/15_0401girlcrashing", "macro-expression", 1, 11, 20, 64, 9])
        writer.writerow([1, r"D:\rawpic\s15\15_0101disgustingteeth", "micro-expression", 2, 5, 9, 40, 4])
        writer.writerow([1, "/data/rawpic/s15/15_0401girlcrashing", "", 2, 31, 35, 64, 4])
        writer.writerow([1, "/data/rawpic/s15/readme", "micro-expression", 2, 31, 35, 64, 4])
    feats = tmp_path / "feats"
    npy_pair(feats, "15_0401girlcrashing", 8)
    npy_pair(feats, "15_0101disgustingteeth", 5)

    report = import_dataset("casme2", [annotations], feats, tmp_path / "set", annotation_format="lgsnet")

    assert csv_lines(tmp_path / "set" / "videos.csv")[1:] == ["15_0101disgustingteeth,s15,40,30", "15_0401girlcrashing,s15,64,30"]
    assert csv_lines(tmp_path / "set" / "annotations.csv")[1:] == [
        "15_0101disgustingteeth,s15,4,,8,ME",
        "15_0401girlcrashing,s15,10,,19,MaE",
        "15_0401girlcrashing,s15,30,,34,ME",
    ]
    assert report.dropped == {"video name not understood": 1}
    assert report.length_sources == {"annotation frame_num": 2}


# ---------------------------------------------------------------------------- features and settings


def test_feature_length_that_does_not_fit_names_the_file(tmp_path):
    book = casme2_workbook(tmp_path / "gt.xlsx")
    lgsnet_pair(tmp_path / "feats", "15_0401girlcrashing", 29, frame_cnt=64)  # stride-2 extraction
    expected = (
        r"15_0401girlcrashing-rgb.npz / 15_0401girlcrashing-flow.npz: 29 snippets, "
        r"but 64 frames with snippet length 8 and stride 8 give 8"
    )
    with pytest.raises(DatasetImportError, match=expected):
        import_dataset("casme2", [book], tmp_path / "feats", tmp_path / "set")
    report = import_dataset("casme2", [book], tmp_path / "feats", tmp_path / "set", snippet_length=8, stride=2)
    assert load_feature_set(tmp_path / "set", 8, 2).num_snippets == {"15_0401girlcrashing": 29}
    assert report.settings["stride"] == 2


def test_snippet_settings_read_from_feature_files(tmp_path):
    me, _ = casme3_workbooks(tmp_path)
    combined_npz(tmp_path / "feats" / "spNO.1_a.npz", 17, frame_cnt=70, snippet_length=4, stride=4)
    report = import_dataset("casme3", [f"ME={me}"], tmp_path / "feats", tmp_path / "set")
    assert (report.settings["snippet_length"], report.settings["stride"]) == (4, 4)
    with pytest.raises(DatasetImportError, match=r"spNO.1_a.npz: stores snippet_length 4 but --snippet 8 was given"):
        import_dataset("casme3", [f"ME={me}"], tmp_path / "feats", tmp_path / "other", snippet_length=8)


def test_rgb_and_flow_one_snippet_apart_are_trimmed(tmp_path):
    me, _ = casme3_workbooks(tmp_path)
    feats = tmp_path / "feats"
    feats.mkdir()
    rgb = features(9, 0)
    np.savez(feats / "spNO.1_a.npz", rgb=rgb, flow=rgb[:8], frame_cnt=np.array(70))
    report = import_dataset("casme3", [f"ME={me}"], feats, tmp_path / "set")
    written_rgb, written_flow = load_features(tmp_path / "set" / "features" / "spNO.1_a.npz")
    assert written_rgb.shape == written_flow.shape == (8, WIDTH)
    assert report.video_repairs == {"rgb and flow differ by one snippet: the longer trimmed": 1}


def test_bad_feature_files_are_named(tmp_path):
    me, _ = casme3_workbooks(tmp_path)
    feats = tmp_path / "feats"
    feats.mkdir()
    np.save(feats / "spNO.1_a-rgb.npy", features(8, 0))
    with pytest.raises(DatasetImportError, match=r"spNO.1_a-rgb.npy: no matching flow file for video 'spNO.1_a'"):
        import_dataset("casme3", [f"ME={me}"], feats, tmp_path / "set")
    np.savez(feats / "spNO.1_a-flow.npz", other=features(8, 0))
    np.save(feats / "spNO.1_a-flow.npy", features(8, 0))
    with pytest.raises(DatasetImportError, match=r"a second flow file for video 'spNO.1_a'"):
        import_dataset("casme3", [f"ME={me}"], feats, tmp_path / "set")
    (feats / "spNO.1_a-flow.npy").unlink()
    with pytest.raises(DatasetImportError, match=r"spNO.1_a-flow.npz: no array 'feature' or 'features' or 'flow' \(arrays found: other\)"):
        import_dataset("casme3", [f"ME={me}"], feats, tmp_path / "set")


def test_no_frame_count_anywhere_asks_for_frames(tmp_path):
    me, _ = casme3_workbooks(tmp_path)
    combined_npz(tmp_path / "feats" / "spNO.1_a.npz", 8)
    with pytest.raises(DatasetImportError, match=r"no frame count for 1 video\(s\) \(spNO.1_a\).*--frames DIR"):
        import_dataset("casme3", [f"ME={me}"], tmp_path / "feats", tmp_path / "set")
    frame_folder(tmp_path / "frames" / "spNO.1" / "a" / "color", 70)
    frame_folder(tmp_path / "frames" / "spNO.1" / "a" / "depth", 3)
    report = import_dataset("casme3", [f"ME={me}"], tmp_path / "feats", tmp_path / "set", frames_dir=tmp_path / "frames")
    assert csv_lines(tmp_path / "set" / "videos.csv")[1:] == ["spNO.1_a,spNO.1,70,30"]
    assert report.length_sources == {"frames folder": 1}


def test_existing_feature_set_needs_overwrite(tmp_path):
    me, _ = casme3_workbooks(tmp_path)
    combined_npz(tmp_path / "feats" / "spNO.1_a.npz", 8, frame_cnt=70)
    out = tmp_path / "set"
    import_dataset("casme3", [f"ME={me}"], tmp_path / "feats", out)
    (out / "features" / "old_video.npz").write_bytes(b"")
    with pytest.raises(DatasetImportError, match=r"already holds a feature set \(videos.csv\); pass --overwrite"):
        import_dataset("casme3", [f"ME={me}"], tmp_path / "feats", out)
    report = import_dataset("casme3", [f"ME={me}"], tmp_path / "feats", out, overwrite=True)
    assert sorted(p.name for p in (out / "features").iterdir()) == ["spNO.1_a.npz"]
    assert any("removed 1 feature file" in note for note in report.notes)


# ---------------------------------------------------------------------------- frame rules


def raw(onset, apex, offset, kind="MaE") -> RawExpression:
    return RawExpression("sheet row 2", "v", onset, apex, offset, kind)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [("mirror", (10, 14, 18)), ("apex", (10, 14, 14)), ("apex+20", (10, 14, 34)), ("drop", None)],
)
def test_unknown_offset_rules(rule, expected):
    report = ImportReport("test")
    result = normalize(raw(11, 15, 0), FrameRules(1, rule), report)
    if expected is None:
        assert result is None and report.dropped == {"offset not annotated (--unknown-offset drop)": 1}
    else:
        assert (result.onset, result.apex, result.offset) == expected
        assert sum(report.repaired.values()) == 1


def test_unknown_offset_without_apex_is_dropped():
    report = ImportReport("test")
    assert normalize(raw(11, 0, 0), FrameRules(1, "mirror"), report) is None
    assert report.dropped == {"offset and apex both not annotated": 1}


def test_rounding_outward_and_first_frame():
    report = ImportReport("test")
    one_based = normalize(raw(566.4, 570.5, 580.2), FrameRules(1), report)
    assert (one_based.onset, one_based.apex, one_based.offset) == (565, 570, 580)
    zero_based = normalize(raw(566.4, 570.5, 580.2), FrameRules(0), ImportReport("test"))
    assert (zero_based.onset, zero_based.apex, zero_based.offset) == (566, 571, 581)
    assert report.repaired == {"fractional frame numbers rounded (onset down, offset up, apex to nearest)": 1}


def test_apex_outside_interval_is_cleared_and_reversed_interval_dropped():
    report = ImportReport("test")
    assert normalize(raw(10, 30, 20), FrameRules(1), report).apex is None
    assert normalize(raw(20, 15, 10), FrameRules(1), report) is None
    assert report.repaired == {"apex outside its interval: apex cleared": 1}
    assert report.dropped == {"offset before onset": 1}


def test_expression_type_spellings():
    assert [parse_type(t) for t in ("macro-expression", "Macro", "MaE", "mae")] == ["MaE"] * 4
    assert [parse_type(t) for t in ("micro-expression", "Micro - 1/2", "ME", "micro")] == ["ME"] * 4
    assert [parse_type(t) for t in ("Blink", "", None, 3)] == [None] * 4


def test_casme3_csv_export_with_duplicate_rows(tmp_path):
    annotations = tmp_path / "casme3.csv"
    annotations.write_text(
        "Subject,Filename,Onset,Apex,Offset,Type\n"
        "spNO.1,a,11,13,16,micro-expression\n"
        "spNO.1,a,11,13,16,micro-expression\n"
        "spNO.1,a,30,,60,macro-expression\n"
    )
    combined_npz(tmp_path / "feats" / "spNO.1_a.npz", 8, frame_cnt=70)
    report = import_dataset("casme3", [annotations], tmp_path / "feats", tmp_path / "set")
    assert csv_lines(tmp_path / "set" / "annotations.csv")[1:] == ["spNO.1_a,spNO.1,10,12,15,ME", "spNO.1_a,spNO.1,29,,59,MaE"]
    assert report.dropped == {"duplicate of an earlier row (same video, interval and type)": 1}
    assert report.examples[next(iter(report.dropped))] == ["casme3.csv row 3"]


def test_output_inside_the_features_folder_is_refused(tmp_path):
    me, _ = casme3_workbooks(tmp_path)
    combined_npz(tmp_path / "feats" / "spNO.1_a.npz", 8, frame_cnt=70)
    with pytest.raises(DatasetImportError, match=r"--out .*set lies inside --features"):
        import_dataset("casme3", [f"ME={me}"], tmp_path / "feats", tmp_path / "feats" / "set")
    combined_npz(tmp_path / "data" / "features" / "spNO.1_a.npz", 8, frame_cnt=70)
    with pytest.raises(DatasetImportError, match=r"--features .*data/features lies inside .*data/features, which the import writes"):
        import_dataset("casme3", [f"ME={me}"], tmp_path / "data" / "features", tmp_path / "data")


def test_features_of_an_extracted_feature_set_take_lengths_from_its_videos_csv(tmp_path):
    me, _ = casme3_workbooks(tmp_path)
    extracted = tmp_path / "extracted"
    combined_npz(extracted / "features" / "spNO.1_a.npz", 8)
    (extracted / "videos.csv").write_text("video,subject,num_frames,fps\nspNO.1_a,spNO.1,71,30.0\n")
    for features_dir in (extracted, extracted / "features"):
        out = tmp_path / f"set-{features_dir.name}"
        report = import_dataset("casme3", [f"ME={me}"], features_dir, out)
        assert csv_lines(out / "videos.csv")[1:] == ["spNO.1_a,spNO.1,71,30"]
        assert report.length_sources == {"videos.csv of the features": 1}


# ---------------------------------------------------------------------------- the real SAMM-LV workbook's quirks


def samm_quirks_workbook(path: Path) -> Path:
    """The quirks of the public SAMM-LV workbook, in miniature: free text above the header, MaE
    rows with onset 0 (``011_6_10``: onset 0, apex 3323, offset 4123.4), apexes 0 and -1, a frame
    stored as 7284.999999999999, one filename (``037_4_1``) naming an ME and a MaE row, and
    annotated videos and a whole subject without features."""
    rows = [
        ["SAMM Long Videos"], [], ["FACS coded"],
        SAMM_HEADER,
        # 011_6: 3 MaE with onset 0 (two more elsewhere), apex 0 and -1
        [11, "011_6_10", 1, 0, 3323, 4123.4, None, "Macro", "12", ""],
        [11, "011_6_1", 1, 5000, 0, 5100, None, "Macro", "12", ""],
        [11, "011_6_2", 1, 5200, -1, 5300, None, "Macro", "12", ""],
        [11, "011_6_3", 1, 7284.999999999999, 7290, 7300.000000000001, None, "Macro", "12", ""],  # 7285 and 7300
        [11, "011_6_4", 1, 100, 101, 103, None, "Micro - 1/2", "4", ""],
        [11, "011_1_1", 1, 0, 50, 400, None, "Macro", "6+12", ""],
        [11, "011_1_2", 1, 500, 510, 520, None, "Micro - 1/2", "4", ""],
        [37, "037_4_1", 1, 200, 205, 210, None, "Micro - 1/2", "4", ""],
        [37, "037_4_1", 1, 900, 1000, 1500, None, "Macro", "12", ""],  # the same filename, another expression
        [37, "037_4_2", 1, 0, 10, 800, None, "Macro", "12", ""],
        [37, "037_4_3", 1, 2000, 2100, 2400, None, "Macro", "12", ""],
        [37, "037_5_1", 1, 10, 20, 600, None, "Macro", "12", ""],  # 037_5 has no features
        [40, "040_1_1", 1, 10, 12, 14, None, "Micro - 1/2", "1", ""],  # subject 040 has no features at all
        [40, "040_2_1", 1, 10, 20, 600, None, "Macro", "12", ""],
        [None, None, None, None, None, None, None, None, None, "totals"],
    ]
    return write_xlsx(path, {"FACS_Movement_Only": rows})


def samm_quirk_features(feats: Path) -> None:
    combined_npz(feats / "011_6.npz", 228, frame_cnt=7310)  # (7310 - 32) // 32 + 1 snippets
    combined_npz(feats / "011_1.npz", 20, frame_cnt=660)
    combined_npz(feats / "037_4.npz", 80, frame_cnt=2590)


def test_samm_real_workbook_quirks_keep_onset_zero_and_count_everything(tmp_path):
    book = samm_quirks_workbook(tmp_path / "SAMM_LONG_VIDEOS_V3.xlsx")
    samm_quirk_features(tmp_path / "feats")
    out = tmp_path / "set"

    report = import_dataset("samm", [book], tmp_path / "feats", out)

    rows = csv_lines(out / "annotations.csv")[1:]
    assert "011_6,011,0,3322,4123,MaE" in rows  # onset 0 -> the first frame; 4123.4 -> 4124 -> 4123
    assert "011_1,011,0,49,399,MaE" in rows and "037_4,037,0,9,799,MaE" in rows
    assert "011_6,011,7284,7289,7299,MaE" in rows  # 7284.999999999999 is 7285, 7300.000000000001 is 7300
    assert "011_6,011,4999,,5099,MaE" in rows and "011_6,011,5199,,5299,MaE" in rows  # apex 0 and -1 emptied
    assert "037_4,037,199,204,209,ME" in rows and "037_4,037,899,999,1499,MaE" in rows  # both 037_4_1 rows
    assert report.type_counts == {"ME": 3, "MaE": 8}
    zero = "onset 0 (under way when the video starts): onset set to the first frame (--zero-onset first-frame)"
    assert report.repaired[zero] == 3
    assert report.examples[zero][0] == "SAMM_LONG_VIDEOS_V3.xlsx[FACS_Movement_Only] row 5 (onset 0, apex 3323, offset 4123.4)"
    assert report.repaired["apex not annotated (0 or -1 in the sheet): written empty"] == 2
    assert "fractional frame numbers rounded (onset down, offset up, apex to nearest)" in report.repaired  # 4123.4 only
    assert report.repaired["fractional frame numbers rounded (onset down, offset up, apex to nearest)"] == 1
    assert report.warnings == [
        "037_4_1 names two different rows (SAMM_LONG_VIDEOS_V3.xlsx[FACS_Movement_Only] row 12 and "
        "SAMM_LONG_VIDEOS_V3.xlsx[FACS_Movement_Only] row 13): both kept"
    ]
    assert report.missing_features == {"037_5": 1, "040_1": 1, "040_2": 1}
    assert report.missing_subjects == ["040"]
    summary = report.summary()
    assert f"    3 x {zero}; e.g. " in summary
    assert "    2 x apex not annotated (0 or -1 in the sheet): written empty; e.g. " in summary
    assert "  warning: 037_4_1 names two different rows" in summary
    assert "  annotated subjects with no features at all (left out): 1\n    040" in summary
    assert load_feature_set(out, 32).intervals["011_6"][0].onset == 0


def test_samm_old_rule_drops_onset_zero_rows(tmp_path):
    book = samm_quirks_workbook(tmp_path / "samm.xlsx")
    samm_quirk_features(tmp_path / "feats")
    report = import_dataset("samm", [book], tmp_path / "feats", tmp_path / "set", zero_onset="drop")
    assert report.type_counts == {"ME": 3, "MaE": 5}
    assert report.dropped == {"onset 0: expression under way when the video starts (--zero-onset drop)": 3}
    with pytest.raises(DatasetImportError, match=r"--zero-onset 'keep': expected one of first-frame, drop"):
        import_dataset("samm", [book], tmp_path / "feats", tmp_path / "set2", zero_onset="keep")


def test_strict_refuses_annotated_videos_without_features(tmp_path):
    book = samm_quirks_workbook(tmp_path / "samm.xlsx")
    samm_quirk_features(tmp_path / "feats")
    with pytest.raises(DatasetImportError) as info:
        import_dataset("samm", [book], tmp_path / "feats", tmp_path / "set", strict=True)
    assert str(info.value) == (
        "--strict: 3 annotated video(s) have no feature file: 037_5 (1 row), 040_1 (1 row), 040_2 (1 row); "
        "whole subjects without features: 040 (without --strict they are left out and listed in the summary)"
    )
    assert not (tmp_path / "set").exists()


def test_onset_zero_in_a_zero_based_sheet_is_the_first_frame_without_repair():
    report = ImportReport("test")
    kept = normalize(raw(0, 3, 9), FrameRules(0), report)
    assert (kept.onset, kept.apex, kept.offset) == (0, 3, 9) and not report.repaired
    assert normalize(raw(-1, 3, 9), FrameRules(0), report) is None
    assert report.dropped == {"onset not annotated": 1}


def test_frame_tolerance_snaps_float_noise_only():
    report = ImportReport("test")
    e = normalize(raw(7284.999999999999, None, 7300.000000000001), FrameRules(1), report)
    assert (e.onset, e.offset) == (7284, 7299) and not report.repaired
    e = normalize(raw(7284.9999, None, 7300.0001), FrameRules(1), report)  # real fractions: rounded outward
    assert (e.onset, e.offset) == (7283, 7300)


# ---------------------------------------------------------------------------- wrong inputs a user may give


def test_a_workbook_given_as_lgsnet_csv_is_named_a_workbook(tmp_path):
    book = samm_quirks_workbook(tmp_path / "samm.xlsx")
    samm_quirk_features(tmp_path / "feats")
    with pytest.raises(DatasetImportError, match=r"samm.xlsx: is an .xlsx workbook, not a CSV text file; --annotation-format lgsnet "
                                                 r"reads the LGSNet release's annotation CSV: for the dataset's official workbook"):
        import_dataset("samm", [book], tmp_path / "feats", tmp_path / "set", annotation_format="lgsnet")
    renamed = tmp_path / "samm-export.csv"  # a workbook saved under a .csv name is still read as one
    renamed.write_bytes(book.read_bytes())
    assert import_dataset("samm", [renamed], tmp_path / "feats", tmp_path / "set").type_counts == {"ME": 3, "MaE": 8}


def test_features_of_another_dataset_list_names_found_and_the_pattern(tmp_path):
    book = samm_quirks_workbook(tmp_path / "samm.xlsx")
    for name in ("15_0401girlcrashing", "15_0101disgustingteeth", "16_0102eatingworms"):
        lgsnet_pair(tmp_path / "feats" / "s15", name, 8, 64)
    with pytest.raises(DatasetImportError) as info:
        import_dataset("samm", [book], tmp_path / "feats", tmp_path / "set")
    message = str(info.value)
    assert "no SAMM-LV feature files found" in message
    assert "<video> named like 006_1 (subject number, '_', recording number)" in message
    assert "; found 3 feature name(s), none a SAMM-LV video: s15/15_0101disgustingteeth, s15/15_0401girlcrashing" in message


def test_unsafe_video_ids_from_feature_names_are_refused(tmp_path):
    annotations = tmp_path / "casme3.csv"
    annotations.write_text("Subject,Filename,Onset,Apex,Offset,Type\nspNO.1,a b,11,13,16,micro-expression\n")
    combined_npz(tmp_path / "feats" / "spNO.1_a b.npz", 8, frame_cnt=70)
    with pytest.raises(DatasetImportError, match=r"spNO.1_a b.npz: video id 'spNO.1_a b' contains ' '; ids may hold only"):
        import_dataset("casme3", [annotations], tmp_path / "feats", tmp_path / "set")


@pytest.mark.parametrize(
    ("rgb", "message"),
    [
        (np.zeros((8, 0), np.float32), r"spNO.1_a.npz: array 'rgb' has shape \(8, 0\): feature width 0"),
        (np.zeros((0, 8), np.float32), r"spNO.1_a.npz: array 'rgb' has shape \(0, 8\): no snippets \(zero-length features\)"),
        (np.full((8, 8), 5e7, np.float32), r"spNO.1_a.npz: rgb has values up to 5e\+07 \(first at snippet 0, dimension 0\); "
                                           r"features beyond \+-1e\+06 overflow float32"),
    ],
)
def test_bad_feature_values_and_shapes_are_named(tmp_path, rgb, message):
    annotations = tmp_path / "casme3.csv"
    annotations.write_text("Subject,Filename,Onset,Apex,Offset,Type\nspNO.1,a,11,13,16,micro-expression\n")
    path = tmp_path / "feats" / "spNO.1_a.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, rgb=rgb, flow=np.zeros((8, 8), np.float32), frame_cnt=np.array(70))
    with pytest.raises(DatasetImportError, match=message):
        import_dataset("casme3", [annotations], tmp_path / "feats", tmp_path / "set")


def test_no_matching_annotation_is_a_warning(tmp_path):
    annotations = tmp_path / "casme3.csv"
    annotations.write_text("Subject,Filename,Onset,Apex,Offset,Type\nspNO.2,a,11,13,16,micro-expression\n")
    combined_npz(tmp_path / "feats" / "spNO.1_a.npz", 8, frame_cnt=70)
    report = import_dataset("casme3", [annotations], tmp_path / "feats", tmp_path / "set")
    assert report.warnings == ["no annotation row matched a feature video: the set has no ground truth to train or score on"]
    assert report.missing_subjects == ["spNO.2"]


def test_a_text_file_named_xlsx_and_an_old_xls_are_named(tmp_path):
    samm_quirk_features(tmp_path / "feats")
    text = tmp_path / "samm.xlsx"
    text.write_text("Subject,Filename\n")
    with pytest.raises(DatasetImportError, match=r"samm.xlsx: not an .xlsx workbook \(not a zip archive\); a CSV export must be named .csv"):
        import_dataset("samm", [text], tmp_path / "feats", tmp_path / "set")
    old = tmp_path / "samm_v1.xlsx"
    old.write_bytes(b"\xd0\xcf\x11\xe0" + bytes(60))  # an .xls saved under a new name
    with pytest.raises(DatasetImportError, match=r"samm_v1.xlsx: old .xls workbooks cannot be read; save it as .xlsx"):
        import_dataset("samm", [old], tmp_path / "feats", tmp_path / "set")
