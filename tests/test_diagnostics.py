"""Pseudo-label and attention diagnostics: the figures by hand, ground truth that reaches the logs
and never the weights, the supervisions without pseudo labels, and the way into metrics.json and
the report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_train, make_feature_set
from tiny_model import QUIET, REGIONS, Recorder, batches, loader, make_module, make_trainer, synthetic_videos

from pwes.callbacks import DFCLCallback, MPLGCallback
from pwes.callbacks.diagnostics import (
    DiagnosticsCallback,
    attach_ground_truth,
    attention_auc,
    ground_truth_map,
    pseudo_label_metrics,
)
from pwes.config import ConfigError
from pwes.data.layout import load_feature_set
from pwes.evaluation.auc import snippet_auc
from pwes.evaluation.megc import MatchConfig
from pwes.evaluation.proposal_files import write_proposals_csv
from pwes.inference.proposals import Proposal
from pwes.model.targets import hard_targets
from pwes.fold import build_callbacks
from pwes.protocol import run_protocol
from pwes.scoring import pool_folds
from pwes.results import write_report

pytestmark = [pytest.mark.filterwarnings(QUIET), pytest.mark.usefixtures("one_thread")]



# ------------------------------------------------------------------------------ the figures
def test_pseudo_label_figures_by_hand() -> None:
    # Two videos, T = 5 and 4 (one padded snippet). Truth: v0 ME at 1, MaE at 2-3; v1 MaE at 0-1.
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.bool)
    truth = torch.zeros(2, 5, 2, dtype=torch.bool)
    truth[0, 1, 0] = truth[0, 2, 1] = truth[0, 3, 1] = truth[1, 0, 1] = truth[1, 1, 1] = True
    truth[1, 4, 1] = True  # on the padded snippet: must be ignored
    fg = torch.zeros(2, 5, 2, dtype=torch.bool)
    fg[0, 1, 0] = fg[0, 0, 0] = True  # ME: 1 hit (t=1), 1 miss (t=0)
    fg[0, 2, 1] = True  # MaE hit
    fg[1, 0, 1] = fg[1, 2, 1] = True  # MaE hit (t=0), miss (t=2): 2 hits of 3 MaE pseudo labels, of 4 MaE snippets
    fg[1, 4, 1] = True  # padded: ignored
    bg = torch.zeros(2, 5, dtype=torch.bool)
    bg[0, 4] = bg[0, 3] = True  # t=4 outside (pure), t=3 inside an MaE (impure)
    bg[1, 3] = True  # pure
    values = pseudo_label_metrics(hard_targets(fg, bg), truth, mask)
    assert values["precision_me"] == pytest.approx(1 / 2) and values["recall_me"] == pytest.approx(1 / 1)
    assert values["precision_mae"] == pytest.approx(2 / 3) and values["recall_mae"] == pytest.approx(2 / 4)
    assert values["bg_purity"] == pytest.approx(2 / 3)
    # foreground share: v0 3/5, v1 2/4 -> 0.55; background share: v0 2/5, v1 1/4 -> 0.325
    assert values["coverage_fg"] == pytest.approx(0.55) and values["coverage_bg"] == pytest.approx(0.325)


def test_undefined_figures_are_left_out() -> None:
    mask = torch.ones(1, 4, dtype=torch.bool)
    nothing = torch.zeros(1, 4, 2, dtype=torch.bool)
    values = pseudo_label_metrics(hard_targets(nothing, torch.zeros(1, 4, dtype=torch.bool)), nothing, mask)
    assert values == {"coverage_fg": 0.0, "coverage_bg": 0.0}
    assert attention_auc(torch.rand(1, 4), nothing, mask) == {}


def test_snippet_auc_by_hand() -> None:
    # positives 0.9 and 0.8, negatives 0.8 and 0.1: pairs 1 + 1 + 0.5 (tie) + 1 of 4
    assert snippet_auc(torch.tensor([0.9, 0.8, 0.8, 0.1]), torch.tensor([True, False, True, False])) == pytest.approx(0.875)
    assert snippet_auc(torch.tensor([0.1, 0.2, 0.9]), torch.tensor([False, False, True])) == 1.0
    assert snippet_auc(torch.tensor([0.9, 0.2, 0.1]), torch.tensor([False, False, True])) == 0.0
    assert snippet_auc(torch.tensor([0.5, 0.5]), torch.tensor([True, True])) is None
    # padded snippets never count: the perfect score survives a misleading padded value
    mask = torch.tensor([[True, True, True, False]])
    truth = torch.tensor([[[False, False], [False, True], [False, False], [False, True]]])
    assert attention_auc(torch.tensor([[0.1, 0.9, 0.2, 0.0]]), truth, mask) == {"attention_auc": 1.0}


def test_ground_truth_map_is_read_only_and_uses_the_snippet_centre(feature_root: Path) -> None:
    fs = load_feature_set(feature_root, 8, 8)
    truth = ground_truth_map(fs, ["a1", "b1"])
    assert set(truth) == {"a1", "b1"}  # only the videos asked for
    # a1: ME frames 8-15 -> snippet 1 (centre 11.5); MaE 40-70 -> snippets 5..8 (centres 43.5..67.5)
    assert truth["a1"][:, 0].nonzero()[0].tolist() == [1]
    assert truth["a1"][:, 1].nonzero()[0].tolist() == [5, 6, 7, 8]
    with pytest.raises(TypeError):
        truth["c1"] = truth["a1"]  # type: ignore[index]
    with pytest.raises(ValueError):
        truth["a1"][0, 0] = True


def test_bad_settings_and_unknown_videos_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="callbacks.diagnostics.final_steps"):
        DiagnosticsCallback(final_steps=0)
    items, _ = synthetic_videos(2, seed=0)
    callback = DiagnosticsCallback()
    callback.set_ground_truth({"v0": np.zeros((items[0].rgb.shape[0], 2), dtype=bool)})
    with pytest.raises(KeyError, match="no ground truth for training video 'v1'"):
        callback.batch_truth(batches(items, 2)[0])


# ----------------------------------------------------------------------- never reaches a loss
def truth_map(items, truth, shuffle: int | None = None) -> dict[str, np.ndarray]:
    out = {}
    for item, gt in zip(items, truth):
        grid = torch.stack([gt == 0, gt == 1], dim=-1).numpy()
        if shuffle is not None:
            grid = grid[np.random.default_rng(shuffle).permutation(len(grid))]
        out[item.name] = grid
    return out


def fit(items, diagnostics: DiagnosticsCallback | None, supervision: str = "point", steps: int = 8):
    """A tiny model with MPLG and DFCL from step 3 (and the diagnostics when given)."""
    torch.manual_seed(0)
    data = batches(items, 4)
    recorder = Recorder()
    callbacks = [MPLGCallback(start_step=3, threshold=0.3), DFCLCallback(start_step=3, regions=REGIONS, bank_videos=4)]
    callbacks += [diagnostics] if diagnostics is not None else []
    module = make_module(supervision=supervision)
    make_trainer(steps, [*callbacks, recorder], log_every_n_steps=1).fit(module, loader(data))
    return {k: v.clone() for k, v in module.state_dict().items()}, recorder


def test_ground_truth_reaches_the_logs_and_never_the_weights() -> None:
    items, truth = synthetic_videos(8, seed=3)
    true_diag, shuffled_diag = DiagnosticsCallback(), DiagnosticsCallback()
    true_diag.set_ground_truth(truth_map(items, truth))
    shuffled_diag.set_ground_truth(truth_map(items, truth, shuffle=1))
    with_true, rec = fit(items, true_diag)
    with_shuffled, _ = fit(items, shuffled_diag)
    without, _ = fit(items, None)
    for name, value in with_true.items():
        assert torch.equal(value, with_shuffled[name]) and torch.equal(value, without[name]), name
    # the callback ran and its numbers depend on the ground truth it was given
    assert len(true_diag.history["attention_auc"]) == 8 and "diag/attention_auc" in rec.metrics[-1] and "diag/mae_precision" in rec.metrics[-1]
    assert {"precision_mae", "recall_mae", "bg_purity", "coverage_fg", "coverage_bg"} <= set(true_diag.history)
    assert true_diag.final_values() != shuffled_diag.final_values()
    assert true_diag.final_values()["diag_precision_mae"] > shuffled_diag.final_values()["diag_precision_mae"]


@pytest.mark.parametrize("supervision", ["video", "full"])
def test_without_pseudo_labels_only_the_attention_auc(supervision: str) -> None:
    items, truth = synthetic_videos(4, seed=1)
    diag = DiagnosticsCallback()
    diag.set_ground_truth(truth_map(items, truth))
    fit(items, diag, supervision=supervision, steps=3)
    assert set(diag.history) == {"attention_auc"} and len(diag.history["attention_auc"]) == 3
    assert set(diag.final_values()) == {"diag_attention_auc"}


def test_without_ground_truth_the_callback_does_nothing() -> None:
    items, _ = synthetic_videos(4, seed=1)
    diag = DiagnosticsCallback()
    fit(items, diag, steps=2)
    assert diag.history == {} and diag.final_values() == {}


# ------------------------------------------------------------ config, protocol, metrics, report
def test_on_by_default_and_removable() -> None:
    assert any(isinstance(c, DiagnosticsCallback) for c in build_callbacks(compose_train([])))
    assert any(isinstance(c, DiagnosticsCallback) for c in build_callbacks(compose_train(["ablation=pplm"])))
    assert not any(isinstance(c, DiagnosticsCallback) for c in build_callbacks(compose_train(["~callbacks.diagnostics"])))


def test_attach_gives_the_training_videos_only(feature_root: Path) -> None:
    fs = load_feature_set(feature_root, 8, 8)
    diag, other = DiagnosticsCallback(), MPLGCallback()
    attach_ground_truth([other, diag], fs, ["a1", "a2"])
    assert diag.truth is not None and set(diag.truth) == {"a1", "a2"}


def test_a_fold_writes_its_diagnostics_and_the_run_pools_them(tmp_path: Path) -> None:
    root = make_feature_set(tmp_path / "set", dim=6)
    cfg = compose_train([
        "dataset=casme2", f"dataset.root={root}", "data.batch_size=2", "trainer.max_steps=4", "dataset.pretrain_steps=2",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "logger=csv",
        "fold=s2", "print_metrics=false", "run_name=diag", "sweep_name=diag", "+dataset.network.stream_dim=16", "+dataset.network.fused_dim=16",
        "+dataset.network.attention_dim=8", "callbacks.dfcl.bank_videos=4",
    ])
    metrics = run_protocol(cfg, tmp_path / "run")
    fold = json.loads((tmp_path / "run" / "fold-s2" / "metrics.json").read_text())
    assert 0.0 <= fold["diag_attention_auc"] <= 1.0 and "diag_coverage_fg" in fold
    assert metrics is not None and metrics["diag_attention_auc"] == pytest.approx(fold["diag_attention_auc"])
    rows = list(csv.DictReader((tmp_path / "run" / "fold-s2" / "logs" / "metrics.csv").open()))
    assert any(r.get("diag/attention_auc") for r in rows) and any(r.get("diag/me_recall") for r in rows)


def test_pooling_averages_the_diagnostics_over_folds(feature_root: Path, tmp_path: Path) -> None:
    fs = load_feature_set(feature_root, 8, 8)
    extras = {n: {"subject": v.subject, "fold": v.subject} for n, v in fs.videos.items()}
    for subject, auc in (("s1", 0.6), ("s2", 0.8)):
        write_proposals_csv(tmp_path / f"fold-{subject}" / "proposals.csv", [Proposal("a1", 8, 15, 0.9, "ME")], extras)
        (tmp_path / f"fold-{subject}" / "metrics.json").write_text(json.dumps({"diag_attention_auc": auc}))
    pooled, _ = pool_folds([tmp_path / "fold-s1", tmp_path / "fold-s2"], fs, MatchConfig())
    assert pooled["diag_attention_auc"] == pytest.approx(0.7)


def test_the_report_shows_the_diagnostics(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for index, (seed, auc) in enumerate((("0", 0.6), ("1", 0.8))):
        job = sweep / str(index)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n")
        (job / "metrics.json").write_text(json.dumps({"f1": 0.2, "diag_attention_auc": auc, "diag_precision_me": 0.5}))
    text = write_report(sweep)
    assert "Diagnostics:" in text and "| attention AUC |" in text
    assert "| 0,1 | 0.500 ± 0.000 (n=2) |" in text and "| 0.700 ± 0.141 (n=2) |" in text
    row = next(csv.DictReader((sweep / "report.csv").open()))
    assert (row["diag_attention_auc_mean"], row["diag_attention_auc_n"]) == ("0.700000", "2")


def test_logged_keys_share_one_prefix_and_pair_each_class() -> None:
    from pwes.callbacks.diagnostics import logged_key

    names = ["precision_me", "recall_me", "precision_mae", "recall_mae", "bg_purity", "coverage_fg", "attention_auc"]
    keys = [logged_key(n) for n in names]
    assert keys == ["diag/me_precision", "diag/me_recall", "diag/mae_precision", "diag/mae_recall", "diag/bg_purity", "diag/coverage_fg", "diag/attention_auc"]
    assert sorted(keys)[3:] == ["diag/mae_precision", "diag/mae_recall", "diag/me_precision", "diag/me_recall"]
