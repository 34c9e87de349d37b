"""pwes.synthetic.false_positives: distractors redrawn from a set's seed, where a false positive
falls, and the tally of a run folder at its operating points (hand-built folders on a tiny set)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pwes.data.layout import Interval
from pwes.evaluation.proposal_files import read_ground_truth, write_proposals_csv
from pwes.inference.proposals import Proposal
from pwes.synthetic import generate, resolve_spec
from pwes.synthetic.draws import Event
from pwes.synthetic.false_positives import FalsePositiveError, classify, distractors, main, tally_run


def event(kind: str, onset: int, offset: int) -> Event:
    return Event(kind, onset, (onset + offset) // 2, offset, onset, offset)


def test_classify_prefers_an_expression_then_the_distractor_overlapping_most() -> None:
    expressions = [Interval("v", "s", 100, 130, "MaE")]
    events = [event("blink", 0, 9), event("head", 5, 40)]
    assert classify(Proposal("v", 120, 160, 0.9, "MaE"), expressions, events) == "on an expression"
    assert classify(Proposal("v", 0, 30, 0.9, "ME"), expressions, events) == "head"  # 26 frames of head, 10 of blink
    assert classify(Proposal("v", 0, 6, 0.9, "ME"), expressions, events) == "blink"  # 7 frames of blink, 2 of head
    assert classify(Proposal("v", 50, 90, 0.9, "MaE"), expressions, events) == "background"


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("set"), resolve_spec("tiny"), 3)


def test_distractors_are_redrawn_for_every_video_and_a_changed_set_is_refused(tiny_set: Path, tmp_path: Path) -> None:
    events = distractors(tiny_set)
    infos, _ = read_ground_truth(tiny_set / "videos.csv", tiny_set / "annotations.csv")
    assert set(events) == set(infos) and sum(len(e) for e in events.values()) > 0
    assert {e.kind for v in events.values() for e in v} <= {"blink", "head", "movement"}
    assert all(0 <= e.onset <= e.offset < infos[v].num_frames for v, es in events.items() for e in es)
    changed = tmp_path / "changed"
    changed.mkdir()
    for name in ("videos.csv", "synthetic.json"):
        (changed / name).write_text((tiny_set / name).read_text())
    lines = (tiny_set / "annotations.csv").read_text().splitlines()
    (changed / "annotations.csv").write_text("\n".join(lines[:-1]) + "\n")  # one expression fewer
    with pytest.raises(FalsePositiveError, match=r"annotations.csv: the expressions of s\d+_v\d+ differ"):
        distractors(changed)
    record = json.loads((tiny_set / "synthetic.json").read_text())
    (changed / "synthetic.json").write_text(json.dumps({**record, "generator_version": 0}))
    with pytest.raises(FalsePositiveError, match="generator version 0"):
        distractors(changed)


def run_folder(tmp_path: Path, root: Path, proposals: list[Proposal], threshold: float) -> Path:
    run = tmp_path / "run"
    fold = run / "fold-s01"
    fold.mkdir(parents=True)
    (run / "fingerprint.json").write_text(json.dumps({"root": str(root)}))
    (run / "config.yaml").write_text("evaluation: {}\n")
    infos, _ = read_ground_truth(root / "videos.csv", root / "annotations.csv")
    write_proposals_csv(fold / "proposals.csv", proposals, {v: {"subject": infos[v].subject, "fold": "s01"} for v in infos})
    (fold / "metrics.json").write_text(json.dumps({"calibrated_threshold": threshold}))
    (run / "metrics.json").write_text(json.dumps({"threshold_p": 0.0}))
    return run


def test_a_run_is_tallied_at_each_operating_point(tiny_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, ground_truth = read_ground_truth(tiny_set / "videos.csv", tiny_set / "annotations.csv")
    events = distractors(tiny_set)
    video, gt = next((v, g) for v, g in ground_truth.items() if g)
    expression = gt[0]
    clear = lambda e: not any(e.onset <= g.offset and g.onset <= e.offset for g in gt)  # noqa: E731
    distractor = next(e for e in events[video] if clear(e))
    busy = [(e.onset, e.offset) for e in events[video]] + [(g.onset, g.offset) for g in gt]
    quiet = next(t for t in range(0, 10_000, 4) if all(t + 3 < a or t > b for a, b in busy))
    proposals = [
        Proposal(video, expression.onset, expression.offset, 0.9, expression.type),  # a hit
        Proposal(video, distractor.onset, distractor.offset, 0.8, "MaE"),  # on a distractor only
        Proposal(video, quiet, quiet + 3, 0.7, "ME"),  # on nothing
        Proposal(video, quiet, quiet + 3, 0.1, "ME"),  # below the calibrated threshold
    ]
    run = run_folder(tmp_path, tiny_set, proposals, threshold=0.5)
    tally = tally_run(run)
    assert dict(tally.tp) == {expression.type: 1}
    assert dict(tally.fp) == {("MaE", distractor.kind): 1, ("ME", "background"): 1}
    assert sum(tally_run(run, "all").fp.values()) == 3 and sum(tally_run(run, "best").fp.values()) == 3
    assert main([str(run)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| run | TP | FP | on an expression | blink | head | movement | background |")
    assert table[2].startswith(f"| {run} | 1 | 2 |") and "1 (50%)" in table[2]


def test_a_folder_that_is_not_a_synthetic_run_is_one_line(tiny_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'fingerprint.json'}: unreadable (FileNotFoundError)"
    real = tmp_path / "real"
    real.mkdir()
    (real / "videos.csv").write_text("video,subject,num_frames,fps\n")
    run = run_folder(tmp_path, tiny_set, [], 0.5)
    (run / "fingerprint.json").write_text(json.dumps({"root": str(real)}))
    assert main([str(run)]) == 2
    assert "synthetic.json: missing; only a set that pwes.synthetic wrote has known distractors" in capsys.readouterr().err
