"""``python -m pwes.synthetic.false_positives RUN_DIR ...``: where a finished run's false positives
fall on a synthetic feature set.

Each unmatched proposal lands on an expression (wrong type or extent), on one of the unannotated
distractors the generator draws (``blink``, ``head`` movement, other facial ``movement``), or on
plain ``background``. The distractors are not in the set's files. They are drawn again from the
generator's seeded streams, and the redrawn expressions are checked against ``annotations.csv``.
Real data has no distractor labels, so this is for the synthetic benchmark only. It tells whether
a method loses precision to distractors or to badly placed expressions. Point labels never name a
distractor as background, so a weakly supervised method may lose precision there.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from pwes.data.layout import Interval
from pwes.io import read_json_object
from pwes.evaluation.calibration import apply_threshold
from pwes.evaluation.megc import matched_ground_truth
from pwes.evaluation.proposal_files import read_ground_truth, read_proposals_csv
from pwes.inference.proposals import Proposal
from pwes.synthetic.draws import Event, place_events, video_layout
from pwes.synthetic.spec import GENERATOR_VERSION, SyntheticSpec

DISTRACTOR_KINDS = ("blink", "head", "movement")
ON_EXPRESSION = "on an expression"
KINDS = (ON_EXPRESSION, *DISTRACTOR_KINDS, "background")
OPERATING_POINTS = ("calibrated", "all", "best")


class FalsePositiveError(ValueError):
    """A run or set this cannot read; the message names the file."""


def distractors(root: Path) -> dict[str, list[Event]]:
    """The distractor events of each video of the synthetic set in ``root``, drawn again from the
    spec and seed that ``synthetic.json`` records."""
    record_path = Path(root) / "synthetic.json"
    if not record_path.exists():
        raise FalsePositiveError(f"{record_path}: missing; only a set that pwes.synthetic wrote has known distractors")
    record = read_json_object(record_path, FalsePositiveError)
    if record.get("generator_version") != GENERATOR_VERSION:
        raise FalsePositiveError(f"{record_path}: generator version {record.get('generator_version')} is not this code's ({GENERATOR_VERSION}); its distractors cannot be redrawn")
    known = {f.name for f in fields(SyntheticSpec)}
    spec = SyntheticSpec(**{k: v for k, v in record["spec"].items() if k in known})
    seed = int(record["seed"])
    videos, counts = video_layout(spec, seed)
    _, annotations = read_ground_truth(Path(root) / "videos.csv", Path(root) / "annotations.csv")
    out: dict[str, list[Event]] = {}
    for index, (name, _, frames) in enumerate(videos):
        events = place_events(np.random.default_rng([seed, 1, index]), spec, frames, counts[index])
        drawn = sorted((e.onset, e.offset, e.kind) for e in events if e.kind not in DISTRACTOR_KINDS)
        if drawn != sorted((g.onset, g.offset, g.type) for g in annotations.get(name, [])):
            raise FalsePositiveError(f"{root}/annotations.csv: the expressions of {name} differ from the ones its spec and seed give; the set was changed after it was written")
        out[name] = [e for e in events if e.kind in DISTRACTOR_KINDS]
    return out


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)


def classify(proposal: Proposal, expressions: Sequence[Interval], events: Sequence[Event]) -> str:
    """Where an unmatched proposal lies. If it overlaps an expression, ``on an expression``.
    Otherwise the kind of the distractor it overlaps most, or ``background`` if none."""
    span = (proposal.onset, proposal.offset)
    if any(_overlap(span, (g.onset, g.offset)) for g in expressions):
        return ON_EXPRESSION
    best, cover = "background", 0
    for event in events:
        if (c := _overlap(span, (event.onset, event.offset))) > cover:
            best, cover = event.kind, c
    return best


@dataclass
class Tally:
    """Matched proposals by type, and false positives by (type, where they fall)."""

    tp: Counter = field(default_factory=Counter)
    fp: Counter = field(default_factory=Counter)

    def kinds(self) -> Counter:
        """False positives by where they fall, both types together."""
        out: Counter = Counter()
        for (_, kind), n in self.fp.items():
            out[kind] += n
        return out


def _thresholds(run_dir: Path, folds: Sequence[Path], at: str) -> dict[Path, float | None]:
    if at == "all":
        return {f: None for f in folds}
    if at == "best":
        pooled = read_json_object(run_dir / "metrics.json", FalsePositiveError)
        if "threshold_p" not in pooled:
            raise FalsePositiveError(f"{run_dir / 'metrics.json'}: no threshold_p (best-on-test threshold)")
        return {f: pooled["threshold_p"] for f in folds}
    out = {}
    for fold in folds:
        metrics = read_json_object(fold / "metrics.json", FalsePositiveError)
        if "calibrated_threshold" not in metrics:
            raise FalsePositiveError(f"{fold / 'metrics.json'}: no calibrated_threshold (written before calibration existed)")
        out[fold] = metrics["calibrated_threshold"]
    return out


def tally_run(run_dir: Path, at: str = "calibrated") -> Tally:
    """Match each finished fold's proposals at operating point ``at`` as the run's evaluation
    settings do, and sort its false positives."""
    from pwes.scoring import match_config

    run_dir = Path(run_dir)
    if at not in OPERATING_POINTS:
        raise FalsePositiveError(f"--at {at}: expected one of {', '.join(OPERATING_POINTS)}")
    root = read_json_object(run_dir / "fingerprint.json", FalsePositiveError).get("root")
    if not root:
        raise FalsePositiveError(f"{run_dir / 'fingerprint.json'}: names no data folder (root)")
    root = Path(root)
    events = distractors(root)
    infos, ground_truth = read_ground_truth(root / "videos.csv", root / "annotations.csv")
    if not (run_dir / "config.yaml").exists():
        raise FalsePositiveError(f"{run_dir / 'config.yaml'}: missing; is {run_dir} a run folder?")
    match = match_config(OmegaConf.load(run_dir / "config.yaml"))
    folds = sorted(p.parent for p in run_dir.glob("fold-*/metrics.json"))
    if not folds:
        raise FalsePositiveError(f"{run_dir}: no finished fold (fold-*/metrics.json)")
    tally = Tally()
    for fold, threshold in _thresholds(run_dir, folds, at).items():
        by_video: dict[str, list[Proposal]] = {}
        for p in apply_threshold(read_proposals_csv(fold / "proposals.csv", infos), threshold):
            by_video.setdefault(p.video, []).append(p)
        for video, proposals in by_video.items():
            for p, matched in zip(proposals, matched_ground_truth(proposals, ground_truth.get(video, []), match)):
                if matched:
                    tally.tp[p.type] += 1
                else:
                    tally.fp[(p.type, classify(p, ground_truth.get(video, []), events.get(video, [])))] += 1
    return tally


def format_table(rows: Mapping[str, Tally]) -> str:
    """A Markdown table: per run its TPs, FPs and the FPs by where they fall (count and share)."""
    lines = ["| run | TP | FP | " + " | ".join(KINDS) + " |", "|---" * (3 + len(KINDS)) + "|"]
    for name, tally in rows.items():
        kinds, total = tally.kinds(), sum(tally.fp.values())
        cells = [f"{kinds[k]} ({kinds[k] / total:.0%})" if total else "0" for k in KINDS]
        lines.append(f"| {name} | {sum(tally.tp.values())} | {total} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pwes.synthetic.false_positives", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders on a synthetic set")
    parser.add_argument("--at", choices=OPERATING_POINTS, default="calibrated",
                        help="operating point: each fold's calibrated threshold (default), all proposals, or the best-on-test threshold")
    args = parser.parse_args(argv)
    try:
        rows = {str(run): tally_run(run, args.at) for run in args.runs}
    except (ValueError, OSError) as err:  # FalsePositiveError, and the readers' one-line errors
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
