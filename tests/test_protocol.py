"""The fold loop's bookkeeping without training: run-folder checks and pooling (the spot
threshold is tested in test_calibration.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from pwes.config import ConfigError, validate_run_settings
from pwes.data.layout import load_feature_set
from pwes.evaluation.megc import MatchConfig, score
from pwes.evaluation.proposal_files import write_proposals_csv
from pwes.inference.proposals import Proposal
from pwes.io import save_npz
from pwes.protocol import prepare_run_folder
from pwes.scoring import pool_folds
from pwes.run_folder import RunFolderError, data_fingerprint, fingerprint_differences, interrupted_message

CONFIG = {"seed": 0, "fold": "all", "model": {"lr": 1.0}, "trainer": {"max_steps": 5, "enable_progress_bar": True}, "logger": {"offline": True}}


def test_run_folder_accepts_same_config_and_ignores_cosmetic_settings(tmp_path: Path) -> None:
    prepare_run_folder(tmp_path, CONFIG, resume=True)
    (tmp_path / "fold-s1").mkdir()
    (tmp_path / "fold-s1" / "metrics.json").write_text("{}")
    cosmetic = {**CONFIG, "trainer": {"max_steps": 5, "enable_progress_bar": False}, "logger": {"offline": False}}
    prepare_run_folder(tmp_path, cosmetic, resume=True)
    # the logged-only diagnostics never change results: toggling or tuning them resumes
    diagnostics = {**CONFIG, "callbacks": {"diagnostics": {"final_steps": 5}}}
    prepare_run_folder(tmp_path, diagnostics, resume=True)
    with pytest.raises(ConfigError, match=r"callbacks.dfcl.temperature"):
        prepare_run_folder(tmp_path, {**CONFIG, "callbacks": {"dfcl": {"temperature": 0.5}}}, resume=True)


def test_run_folder_refuses_other_config_or_no_resume(tmp_path: Path) -> None:
    prepare_run_folder(tmp_path, CONFIG, resume=True)
    (tmp_path / "fold-s1").mkdir()
    (tmp_path / "fold-s1" / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"different config \(model.lr: 1.0 vs 2.0\)"):
        prepare_run_folder(tmp_path, {**CONFIG, "model": {"lr": 2.0}}, resume=True)
    with pytest.raises(ConfigError, match="resume=false refuses"):
        prepare_run_folder(tmp_path, CONFIG, resume=False)


def test_pooling_equals_the_sum_of_folds(feature_root: Path, tmp_path: Path) -> None:
    fs = load_feature_set(feature_root, 8, 8)
    extras = {n: {"subject": v.subject, "fold": v.subject} for n, v in fs.videos.items()}
    by_fold = {
        "s1": [Proposal("a1", 8, 15, 0.9, "ME"), Proposal("a1", 0, 5, 0.5, "ME"), Proposal("a1", 40, 70, 0.8, "MaE")],
        "s2": [Proposal("b1", 40, 60, 0.7, "MaE")],
    }
    folds = []
    for subject, proposals in by_fold.items():
        write_proposals_csv(tmp_path / f"fold-{subject}" / "proposals.csv", proposals, extras)
        folds.append(tmp_path / f"fold-{subject}")
    pooled, proposals = pool_folds(folds, fs, MatchConfig())
    assert len(proposals) == 4 and pooled["num_folds"] == 2 and pooled["num_videos"] == 3  # a1, a2, b1
    # a1: ME and MaE found, one FP; b1: FP and its MaE missed
    assert (pooled["tp"], pooled["fp"], pooled["fn"]) == (2, 2, 1)
    for subject, fold_proposals in by_fold.items():
        videos = fs.videos_of([subject])
        per_fold = score(fold_proposals, {v: fs.intervals[v] for v in videos}, {v: 30.0 for v in videos})
        pooled["tp"] -= per_fold["tp"]
        pooled["fp"] -= per_fold["fp"]
    assert pooled["tp"] == 0 and pooled["fp"] == 0


def test_pooling_records_the_thread_count_and_platform_and_warns_when_folds_differ(feature_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fs = load_feature_set(feature_root, 8, 8)
    extras = {n: {"subject": v.subject, "fold": v.subject} for n, v in fs.videos.items()}
    folds = []
    for subject, video, threads in (("s1", "a1", 2), ("s2", "b1", 1)):
        fold = tmp_path / f"fold-{subject}"
        write_proposals_csv(fold / "proposals.csv", [Proposal(video, 8, 15, 0.9, "ME")], extras)
        (fold / "metrics.json").write_text(json.dumps({"torch_threads": threads}))
        folds.append(fold)
    with caplog.at_level("WARNING", logger="pwes"):
        assert pool_folds(folds[:1], fs, MatchConfig())[0]["torch_threads"] == 2
    assert not caplog.records
    with caplog.at_level("WARNING", logger="pwes"):
        assert pool_folds(folds, fs, MatchConfig())[0]["torch_threads"] == [1, 2]
    assert "1 thread(s): s2; 2 thread(s): s1" in caplog.text
    # folds written before the count was recorded: no key, no warning
    (folds[1] / "metrics.json").write_text("{}")
    caplog.clear()
    with caplog.at_level("WARNING", logger="pwes"):
        assert pool_folds(folds, fs, MatchConfig())[0]["torch_threads"] == 2
    assert not caplog.records
    # the compute platform the same way: one value, or the distinct ones with the folds named
    for fold, platform in zip(folds, ("AMD EPYC, AVX512, torch 2.13.0+cpu", "Intel Xeon, AVX512, amx_bf16, torch 2.13.0+cpu")):
        (fold / "metrics.json").write_text(json.dumps({"torch_threads": 1, "compute_platform": platform}))
    caplog.clear()
    with caplog.at_level("WARNING", logger="pwes"):
        pooled = pool_folds(folds, fs, MatchConfig())[0]
    assert pooled["torch_threads"] == 1
    assert pooled["compute_platform"] == ["AMD EPYC, AVX512, torch 2.13.0+cpu", "Intel Xeon, AVX512, amx_bf16, torch 2.13.0+cpu"]
    assert "different compute platforms (AMD EPYC, AVX512, torch 2.13.0+cpu: s1; Intel Xeon, AVX512, amx_bf16, torch 2.13.0+cpu: s2)" in caplog.text
    assert pool_folds(folds[:1], fs, MatchConfig())[0]["compute_platform"] == "AMD EPYC, AVX512, torch 2.13.0+cpu"


def finish_fold(run_dir: Path, subject: str, fingerprint: dict | None) -> None:
    fold = run_dir / f"fold-{subject}"
    fold.mkdir(parents=True)
    if fingerprint is not None:
        (fold / "fingerprint.json").write_text(json.dumps(fingerprint))
    (fold / "metrics.json").write_text("{}")


def test_refusal_names_each_setting_with_old_and_new_values(tmp_path: Path) -> None:
    old = {**CONFIG, "callbacks": {"dfcl": {"temperature": 0.3}}, "dataset": {"root": "/a", "fps": 30}}
    prepare_run_folder(tmp_path, old, resume=True)
    finish_fold(tmp_path, "s1", None)
    new = {**old, "callbacks": {"dfcl": {"temperature": 1.0}}, "seed": 3}
    with pytest.raises(RunFolderError, match=r"\(callbacks.dfcl.temperature: 0.3 vs 1.0; seed: 0 vs 3\)"):
        prepare_run_folder(tmp_path, new, resume=True)
    # the data's place is not a result setting: moved data resumes (its content is fingerprinted)
    prepare_run_folder(tmp_path, {**old, "dataset": {"root": "/b", "fps": 30}}, resume=True)


def test_fingerprint_names_what_changed(feature_root: Path, tmp_path: Path) -> None:
    fs = load_feature_set(feature_root, 8, 8)
    before = data_fingerprint(fs)
    prepare_run_folder(tmp_path, CONFIG, resume=True, fingerprint=before)
    finish_fold(tmp_path, "s1", before)
    prepare_run_folder(tmp_path, CONFIG, resume=True, fingerprint=data_fingerprint(fs, before))  # same data: accepted
    # a touched (rewritten, identical) feature file is re-hashed and still accepted
    path = fs.videos["b1"].feature_path
    data = path.read_bytes()
    path.write_bytes(data)
    assert fingerprint_differences(before, data_fingerprint(fs, before)) == []
    # changed annotations: refused, naming the file
    annotations = feature_root / "annotations.csv"
    annotations.write_text(annotations.read_text().replace(",15,ME", ",16,ME"))
    with pytest.raises(RunFolderError, match=r"the data changed since fold-s1 was trained \(changed: annotations.csv \(.*annotations.csv\)\).*run_name=NEW"):
        prepare_run_folder(tmp_path, CONFIG, resume=True, fingerprint=data_fingerprint(fs, before))
    # changed features of one video: refused, naming the video
    rgb, flow = np.load(path)["rgb"], np.load(path)["flow"]
    save_npz(path, rgb=rgb + 1, flow=flow)
    changed = fingerprint_differences(before, data_fingerprint(fs, before))
    assert changed[-1].startswith("features of video 'b1' (") and changed[0].startswith("annotations.csv")


def test_finished_fold_without_fingerprint_is_refused(feature_root: Path, tmp_path: Path) -> None:
    fingerprint = data_fingerprint(load_feature_set(feature_root, 8, 8))
    prepare_run_folder(tmp_path, CONFIG, resume=True, fingerprint=fingerprint)
    finish_fold(tmp_path, "s1", None)
    with pytest.raises(RunFolderError, match=r"fold-s1: finished without a data fingerprint"):
        prepare_run_folder(tmp_path, CONFIG, resume=True, fingerprint=fingerprint)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"trainer": {"max_steps": 0}}, "trainer.max_steps=0 must be at least 1"),
        ({"trainer": {"max_steps": -1}}, "trainer.max_steps=-1 must be at least 1"),
        ({"trainer": {"max_steps": "abc"}}, "trainer.max_steps='abc' must be a whole number"),
        ({"dataset": {"pretrain_steps": 5}}, "dataset.pretrain_steps=5 must be below trainer.max_steps=5"),
        ({"dataset": {"pretrain_steps": -2}}, "dataset.pretrain_steps=-2 must be at least 0"),
        ({"seed": "abc"}, "seed='abc' must be a whole number"),
        ({"seed": 2**40}, "must be between 0 and 4294967295"),
        ({"resume": "maybe"}, "resume='maybe' must be true or false"),
        ({"dataset": {"snippet_length": 0}}, "dataset.snippet_length=0 must be at least 1"),
        ({"dataset": {"fps": 0}}, "dataset.fps=0 must be a positive number"),
    ],
)
def test_run_settings_are_validated(overrides: dict, message: str) -> None:
    cfg = OmegaConf.merge({"seed": 0, "resume": True, "trainer": {"max_steps": 5}, "dataset": {"pretrain_steps": 2, "snippet_length": 8, "fps": 30}}, overrides)
    with pytest.raises(ConfigError) as err:
        validate_run_settings(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_interrupted_message_lists_kept_folds(tmp_path: Path) -> None:
    finish_fold(tmp_path, "s1", {})
    (tmp_path / "fold-s2").mkdir()
    message = interrupted_message(tmp_path, "all")
    assert "kept 1 finished fold(s) (fold-s1)" in message and "resume with the same command: python -m pwes.train" in message


def test_a_folder_from_before_a_setting_existed_resumes_with_its_old_behaviour(tmp_path: Path) -> None:
    """A setting added later is absent from an old folder's config: the value that reproduces the
    old code (or any value while the setting is inert) resumes; another value is refused."""
    old = {**CONFIG, "model": {"lr": 1.0, "network": {"topk_divisors": [16, 8, 8]}}}
    prepare_run_folder(tmp_path, old, resume=True)
    assert json.loads((tmp_path / "run.json").read_text()) == {"schema": 2}
    (tmp_path / "run.json").unlink()  # a folder from before the run record had a schema (1)
    (tmp_path / "fold-s1").mkdir()
    (tmp_path / "fold-s1" / "metrics.json").write_text("{}")
    same = {**CONFIG, "model": {"lr": 1.0, "network": {"topk_divisors": [16, 8, 8], "topk": "divisors", "topk_seconds": [0.3, 1.5], "dropout_impl": "torch"}}}
    with pytest.raises(RunFolderError, match=r"model.network.topk: \(unset\) vs points; model.network.topk_seconds: \(unset\) vs \[0.3, 1.5\]\)"):
        prepare_run_folder(tmp_path, {**same, "model": {"lr": 1.0, "network": {**same["model"]["network"], "topk": "points"}}}, resume=True)
    with pytest.raises(RunFolderError, match=r"\(model.network.dropout_impl: \(unset\) vs fast\)"):  # results changed: refused
        prepare_run_folder(tmp_path, {**same, "model": {"lr": 1.0, "network": {**same["model"]["network"], "dropout_impl": "fast"}}}, resume=True)
    prepare_run_folder(tmp_path, same, resume=True)
    # the logged-only gradient shares never change results
    prepare_run_folder(tmp_path, {**same, "callbacks": {"grad_share": {"every_n_steps": 50}}}, resume=True)


def test_a_folder_of_the_current_schema_may_not_lack_a_setting(tmp_path: Path) -> None:
    """A folder whose run.json says schema 2 was written with every setting of LEGACY_SETTINGS, so
    one missing from its config.yaml is a difference, not an old folder; a newer schema is refused."""
    old = {**CONFIG, "model": {"lr": 1.0, "network": {"topk_divisors": [16, 8, 8]}}}
    prepare_run_folder(tmp_path, old, resume=True)
    (tmp_path / "fold-s1").mkdir()
    (tmp_path / "fold-s1" / "metrics.json").write_text("{}")
    same = {**CONFIG, "model": {"lr": 1.0, "network": {"topk_divisors": [16, 8, 8], "topk": "divisors"}}}
    with pytest.raises(RunFolderError, match=r"model.network.topk: \(unset\) vs divisors"):
        prepare_run_folder(tmp_path, same, resume=True)
    (tmp_path / "run.json").write_text('{"schema": 3}')
    with pytest.raises(RunFolderError, match=r"run.json: run-record schema 3, this pwes knows 1 to 2 \(a newer pwes wrote it\?\)"):
        prepare_run_folder(tmp_path, old, resume=True)
