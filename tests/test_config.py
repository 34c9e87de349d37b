"""The Hydra configs compose for every dataset, experiment and ablation, and mirror the code's settings."""

from __future__ import annotations

from functools import partial

import conftest
import hydra
import pytest
from omegaconf import OmegaConf

from pwes.config import CONFIG_DIR, ConfigError, moved_setting, run_name_from_overrides, settings_without_effect, sweep_name, validate_run_settings
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


@pytest.mark.parametrize("ablation", sorted(p.stem for p in (CONFIG_DIR / "ablation").glob("*.yaml")))
def test_every_ablation_builds_its_module_and_video_labels_keep_the_divisors(ablation: str) -> None:
    """topk=points (the default) needs point counts: the video-level rows set divisors, and every
    row's model settings are accepted by the module."""
    cfg = compose_train([f"ablation={ablation}"])
    expected = "divisors" if cfg.model.supervision == "video" else "points"
    assert cfg.model.network.topk == expected
    hydra.utils.instantiate(cfg.model, rgb_dim=8, flow_dim=8, _recursive_=False)


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


def test_long_run_names_stay_unique_and_short() -> None:
    base = "dataset.root=/data/x," + ",".join(f"callbacks.mplg.k{i}=0.{i}" for i in range(20))
    a, b = run_name_from_overrides(base + ",seed=1"), run_name_from_overrides(base + ",seed=2")
    assert len(base) > 200 and a != b  # they differ only after the cut
    assert len(a) == len(b) == 200 and a[:191] == b[:191] == run_name_from_overrides(base)[:191]
    assert a[191] == "-" and all(c in "0123456789abcdef" for c in a[192:])
    assert run_name_from_overrides(base + ",seed=1") == a  # the same command, the same folder
    short = "x=" + "a" * 198  # exactly 200: not cut
    assert run_name_from_overrides(short) == short


def test_sweep_name_comes_from_the_overrides_unless_set() -> None:
    assert sweep_name(None, "callbacks.mplg.threshold=0.5,0.7,fold=s01") == "callbacks.mplg.threshold=0.5,0.7,fold=s01"
    assert sweep_name("table4_casme2", "anything") == "table4_casme2"
    assert sweep_name(None, "") == "default"
    cfg = compose_train(["experiment=table4", "dataset=casme2", "dataset.root=/data/x"])
    assert str(cfg.hydra.sweep.dir).endswith("/multiruns/table4_casme2")


@pytest.mark.parametrize(
    ("overrides", "checked", "expected"),
    [
        (["ablation=baseline"], ["callbacks.mplg.threshold=0.5"], "the mplg callback does nothing under model.supervision=video (it acts under point supervision only)"),
        (["model.supervision=full"], ["callbacks.dfcl.temperature=0.5"], "the dfcl callback does nothing under model.supervision=full (it acts under point supervision only)"),
        (["ablation=mplg", "+callbacks.dfcl.temperature=0.5"], ["+callbacks.dfcl.temperature=0.5"], "there is no dfcl callback in this setup (callbacks: mplg, diagnostics, grad_share)"),
        (["callbacks/pseudo=pplm"], ["callbacks.pplm.threshold=0.4"], None),  # configured and acting
        (["ablation=baseline"], ["callbacks.diagnostics.final_steps=5"], None),  # diagnostics act under every supervision
        (["ablation=baseline"], ["~callbacks.dfcl", "seed=1"], None),
    ],
)
def test_settings_without_effect(overrides: list[str], checked: list[str], expected: str | None) -> None:
    found = settings_without_effect(compose_train(overrides), checked)
    assert found == ([(checked[0], expected)] if expected else [])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.mplg.threshold=0.5", "model.mplg.threshold moved: use callbacks.mplg.threshold=0.5"),
        ("+model.pplm.top_ratio=0.2", "model.pplm.top_ratio moved: use callbacks.pplm.top_ratio=0.2"),
        ("model/mplg=caf1", "model/mplg moved: use callbacks.mplg.variant=caf1"),
        ("model.pseudo=pplm", "model.pseudo moved: use callbacks/pseudo=pplm"),
        ("model.loss.contrastive=0.2", "model.loss.contrastive moved: use callbacks.dfcl.weight=0.2"),
        ("model.dfcl.enabled=false", "model.dfcl.enabled moved: use callbacks/contrastive=none (or ~callbacks.dfcl) to switch DFCL off"),
        ("model.network.dropout=0.1", None),
        ("model.mplgx=1", None),
    ],
)
def test_moved_settings_name_their_new_place(override: str, expected: str | None) -> None:
    hint = moved_setting(override)
    assert (hint.removesuffix(" (MPLG, PPLM and DFCL are callbacks now: conf/callbacks/)") if hint else None) == expected


def test_a_config_still_holding_a_moved_setting_is_refused() -> None:
    cfg = compose_train(["+model.mplg.threshold=0.5"])  # as an older conf/ would compose
    with pytest.raises(ConfigError, match=r"^model.mplg moved: use callbacks.mplg \(MPLG, PPLM and DFCL are callbacks now"):
        validate_run_settings(cfg)
