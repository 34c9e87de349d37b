"""The Hydra configs compose for every dataset, experiment and ablation, and mirror the code's settings."""

from __future__ import annotations

from functools import partial

import conftest
import pytest
from omegaconf import OmegaConf

from pwes.config import CONFIG_DIR, run_name_from_overrides
from pwes.evaluation.megc import MatchConfig
from pwes.inference.proposals import ProposalConfig

compose_train = partial(conftest.compose_train, with_hydra=True)  # the sweeper and launcher settings too
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR.parent / "experiments").glob("*.yaml"))


def test_default_is_full_pwes_on_the_synthetic_default() -> None:
    cfg = compose_train()
    assert cfg.dataset.name == "synthetic_small"
    assert cfg.fold == "all"
    assert cfg.model.supervision == "point" and set(cfg.callbacks) == {"mplg", "dfcl", "diagnostics", "grad_share"}
    assert cfg.callbacks.mplg.threshold == 0.8 and cfg.callbacks.mplg.top_ratio == 0.3
    assert cfg.callbacks.mplg.start_step == cfg.callbacks.dfcl.start_step == cfg.dataset.pretrain_steps
    assert cfg.logger._target_.endswith("WandbLogger") and cfg.logger.offline is True
    ProposalConfig(**OmegaConf.to_container(cfg.proposals))
    MatchConfig(**OmegaConf.to_container(cfg.evaluation))


@pytest.mark.parametrize(
    ("dataset", "lr", "pretrain", "snippet", "background"),
    [("casme2", 0.0005, 80, 8, 10), ("samm", 0.0008, 50, 32, 8), ("casme3", 0.0005, 80, 8, 10)],
)
def test_paper_settings_per_dataset(dataset: str, lr: float, pretrain: int, snippet: int, background: int) -> None:
    cfg = compose_train([f"dataset={dataset}", "dataset.root=/data/x"])
    assert cfg.dataset.lr == lr and cfg.model.optimizer.lr == lr
    assert cfg.dataset.pretrain_steps == pretrain
    assert cfg.dataset.snippet_length == snippet == cfg.dataset.stride
    assert cfg.dataset.regions.background == background
    assert cfg.trainer.max_steps == 1000 and cfg.data.batch_size == 8


def test_ablation_rows() -> None:
    assert compose_train(["ablation=baseline"]).model.supervision == "video"
    logged = {"diagnostics", "grad_share"}
    assert set(compose_train(["ablation=pplm"]).callbacks) == {"pplm", *logged}
    assert set(compose_train(["ablation=mplg"]).callbacks) == {"mplg", *logged}
    assert set(compose_train(["ablation=mplg_dfcl"]).callbacks) == {"mplg", "dfcl", *logged}
    # controls and upper bounds (not the paper's rows)
    assert set(compose_train(["ablation=points_only"]).callbacks) == logged
    oracle = compose_train(["ablation=oracle_mplg_bg"])
    assert set(oracle.callbacks) == {"oracle", "dfcl", *logged} and oracle.callbacks.oracle.background == "lowest_0.6T"
    assert compose_train(["ablation=oracle_all_bg"]).callbacks.oracle.background == "all"
    assert compose_train(["ablation=oracle_all_bg", "callbacks.oracle.background=twice_foreground"]).callbacks.oracle.background == "twice_foreground"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_compose_and_sweep_something(experiment: str) -> None:
    cfg = compose_train([f"experiment={experiment}", "dataset=casme2", "dataset.root=/data/x"])
    params = cfg.hydra.sweeper.params
    assert params, f"{experiment} sweeps nothing"
    assert cfg.sweep_name == f"{experiment}_casme2"
    assert any("," in str(v) for v in params.values())


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_job_of_an_experiment_composes(experiment: str) -> None:
    """Each swept value is a valid override of the composed config (keys moved to callbacks.*)."""
    params = compose_train([f"experiment={experiment}", "dataset=casme2", "dataset.root=/data/x"]).hydra.sweeper.params
    fixed = [f"{k}={v}" for k, v in params.items() if "," not in str(v)]
    for key, values in params.items():
        for value in str(values).split(",") if "," in str(values) else []:
            cfg = compose_train([f"experiment={experiment}", "dataset=casme2", "dataset.root=/data/x", *fixed, f"{key}={value}"])
            if "/" not in key and key != "ablation":
                assert str(OmegaConf.select(cfg, key)) == value, (experiment, key, value)


def test_every_table_has_an_experiment() -> None:
    assert {f"table{i}" for i in range(1, 9)} <= set(EXPERIMENTS)


def test_run_name_from_overrides() -> None:
    assert run_name_from_overrides("") == "default"
    assert run_name_from_overrides("dataset.root=/data/samm,fold=all") == "dataset.root=_data_samm,fold=all"


@pytest.mark.parametrize(("launcher", "target"), [("local", "JoblibLauncher"), ("slurm", "SlurmLauncher")])
def test_launchers_compose(launcher: str, target: str) -> None:
    cfg = compose_train([f"hydra/launcher={launcher}"])
    assert cfg.hydra.launcher._target_.endswith(target)
