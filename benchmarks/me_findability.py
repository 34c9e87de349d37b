"""Where does a trained run lose its micro-expressions? Snippet curves and the proposal funnel.

For every finished fold of each run folder given (``outputs/runs/...`` or a multirun job), the
fold's checkpoint predicts its test videos, and two tables are printed over the pooled test
snippets:

1. **Curves**: for each map the network gives (the RGB and flow attentions, their mean, which
   ranks the proposals, and the ME and MaE columns of the plain and the suppressed TCAM),
   snippet AUCs ME vs background, MaE vs background and ME vs MaE, and the median share of its
   video's snippets that score above an ME's best snippet (0 = the ME is the top of its video;
   spotting at IoU >= 0.5 needs it near 0). Snippet labels are those of ``motion_energy.py``
   (a snippet belongs to an interval when at least half of it lies inside).
2. **Funnel**: of the test MEs, how many have a run of the attention's multi-top series that
   would match (ME-typed, IoU >= 0.5) before NMS; how many proposals match after NMS (the
   "all" operating point); and after the fold's calibrated threshold from ``metrics.json``.

Ground truth is read here only to score; nothing is written unless ``--json`` is given. Use it on a run of the supervised
reference (``model.supervision=full``) beside a PWES run to see which stage separates them, and
against the probe of ``motion_energy.py`` to see what the features allow.

    python benchmarks/me_findability.py RUN_DIR [RUN_DIR ...] [--json FILE]

Run it from the folder the runs were trained from: a synthetic preset is found again in
``paths.cache_dir`` of the run's ``config.yaml``, which is relative to it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from motion_energy import BACKGROUND, MAE, ME, auc, snippet_labels  # noqa: E402

from pwes.config import ConfigError  # noqa: E402
from pwes.data.batch import collate  # noqa: E402
from pwes.data.layout import LayoutError  # noqa: E402
from pwes.evaluation.calibration import apply_threshold  # noqa: E402
from pwes.evaluation.megc import MatchConfig, score  # noqa: E402
from pwes.inference.maps import proposals_from_prediction  # noqa: E402
from pwes.inference.proposals import ProposalConfig, expression_type, interval_iou, multi_top_runs  # noqa: E402
from pwes.fold import FoldSplitError, load_fold  # noqa: E402
from pwes.protocol import resolve_feature_set  # noqa: E402
from pwes.spot import SpotError  # noqa: E402

CURVES = ("attention (rgb)", "attention (flow)", "attention", "TCAM ME", "suppressed TCAM ME", "TCAM MaE", "suppressed TCAM MaE")


class FindabilityError(ValueError):
    """A run folder cannot be read; the message names it."""


def fold_dirs(run: Path) -> list[Path]:
    """The finished folds (checkpoint and metrics.json) of a run folder."""
    if not (run / "config.yaml").is_file():
        raise FindabilityError(f"{run}: not a pwes run folder (no config.yaml)")
    folds = [f for f in sorted(run.glob("fold-*")) if (f / "metrics.json").is_file() and (f / "checkpoints" / "last.ckpt").is_file()]
    if not folds:
        raise FindabilityError(f"{run}: no finished fold (fold-*/metrics.json with checkpoints/last.ckpt)")
    return folds


def analyse(runs: Sequence[Path]) -> dict[str, object]:
    """Curve figures and the ME funnel over every finished fold of ``runs``."""
    curves: dict[str, list[np.ndarray]] = {name: [] for name in CURVES}
    ranks: dict[str, list[float]] = {name: [] for name in CURVES}
    labels: list[np.ndarray] = []
    funnel = {"me": 0, "candidate": 0}
    all_proposals, calibrated, ground_truth, fps = [], [], {}, {}
    folds_of = {run: fold_dirs(run) for run in runs}  # every folder checked before any work
    for run, folds in folds_of.items():
        try:
            cfg = OmegaConf.load(run / "config.yaml")
        except Exception as err:  # noqa: BLE001 - any YAML/OmegaConf failure means an unreadable config
            raise FindabilityError(f"{run / 'config.yaml'}: not a readable run config ({type(err).__name__})") from None
        feature_set = resolve_feature_set(cfg)
        for fold in folds:
            subject = fold.name.removeprefix("fold-")
            trained = load_fold(cfg, feature_set, fold, subject)  # the fold's model and the split training built for it
            model, proposal_cfg, test_set = trained.model, trained.info.proposal_config(), trained.datamodule.test_set
            threshold = json.loads((fold / "metrics.json").read_text()).get("calibrated_threshold")
            for index in range(len(test_set)):
                item = test_set[index]
                batch = collate([item])
                with torch.inference_mode():
                    output = model.network(batch.rgb, batch.flow, batch.mask)
                    prediction = model.predict_step(batch, 0)[0]
                info, intervals = feature_set.videos[item.name], feature_set.intervals[item.name]
                snippet_label = snippet_labels(intervals, len(prediction.attention), feature_set.snippet_length, feature_set.stride)
                maps = dict(zip(CURVES, (
                    output.attention_rgb[0], output.attention_flow[0], output.attention[0],
                    output.tcam[0, :, 0], output.tcam_suppressed[0, :, 0], output.tcam[0, :, 1], output.tcam_suppressed[0, :, 1],
                )))
                for name, values in maps.items():
                    values = values.float().numpy()
                    curves[name].append(values)
                    if (snippet_label == ME).any():
                        ranks[name].append(float((values > values[snippet_label == ME].max()).mean()))
                labels.append(snippet_label)
                funnel["me"] += sum(i.type == "ME" for i in intervals)
                funnel["candidate"] += candidate_hits(prediction.attention, intervals, info.num_frames, info.fps, feature_set.snippet_length, feature_set.stride, proposal_cfg)
                proposals = proposals_from_prediction(prediction, info.num_frames, info.fps, feature_set.snippet_length, feature_set.stride, proposal_cfg)
                all_proposals += proposals
                calibrated += apply_threshold(proposals, threshold)
                ground_truth[item.name], fps[item.name] = intervals, info.fps
    label = np.concatenate(labels)
    table = {}
    for name in CURVES:
        values = np.concatenate(curves[name])
        table[name] = {
            "auc_me_bg": pair_auc(values, label, ME, BACKGROUND),
            "auc_mae_bg": pair_auc(values, label, MAE, BACKGROUND),
            "auc_me_mae": pair_auc(values, label, ME, MAE),
            "me_rank": float(np.median(ranks[name])) if ranks[name] else float("nan"),
        }
    match = MatchConfig()
    funnel["all"] = int(score(all_proposals, ground_truth, fps, match)["me_tp"])
    funnel["calibrated"] = int(score(calibrated, ground_truth, fps, match)["me_tp"])
    return {"curves": table, "funnel": funnel, "test_videos": len(ground_truth), "me_snippets": int((label == ME).sum())}


def pair_auc(values: np.ndarray, label: np.ndarray, positive: int, negative: int) -> float:
    keep = (label == positive) | (label == negative)
    return auc(values[keep], label[keep] == positive)


def candidate_hits(attention: np.ndarray, intervals: Sequence, num_frames: int, fps: float, length: int, stride: int, cfg: ProposalConfig) -> int:
    """MEs matched (ME-typed, IoU >= 0.5) by some run of the attention's multi-top series, before
    scoring and NMS."""
    runs = list(multi_top_runs(attention, cfg.k_min, cfg.largest_k(len(attention))))
    onsets = np.array([s * stride for s, _ in runs], dtype=np.int64)
    offsets = np.array([min(e * stride + length - 1, num_frames - 1) for _, e in runs], dtype=np.int64)
    me_typed = np.array([expression_type(int(a), int(b), fps, cfg.me_max_seconds) == "ME" for a, b in zip(onsets, offsets)], dtype=bool)
    hits = 0
    for interval in intervals:
        if interval.type == "ME" and len(runs):
            hits += bool(((interval_iou(onsets, offsets, interval.onset, interval.offset) >= 0.5 - 1e-9) & me_typed).any())
    return hits


def report(result: dict[str, object]) -> str:
    lines = [
        f"{result['test_videos']} test videos, {result['me_snippets']} ME snippets",
        "",
        "| curve | ME vs bg AUC | MaE vs bg AUC | ME vs MaE AUC | ME rank (share of T above) |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["curves"].items():
        lines.append(f"| {name} | {row['auc_me_bg']:.3f} | {row['auc_mae_bg']:.3f} | {row['auc_me_mae']:.3f} | {row['me_rank']:.3f} |")
    f = result["funnel"]
    lines += [
        "",
        "| MEs | a multi-top run matches (before NMS) | matched: all proposals | matched: calibrated |",
        "|---|---|---|---|",
        f"| {f['me']} | {f['candidate']} | {f['all']} | {f['calibrated']} |",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (config.yaml beside fold-*/)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    try:
        result = analyse(args.runs)
    except (FindabilityError, ConfigError, LayoutError, SpotError, FoldSplitError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report(result))
    if args.json:
        from pwes import io

        io.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
