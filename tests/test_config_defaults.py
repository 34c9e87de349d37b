"""Every settings dataclass that conf/ configures has the defaults its YAML gives: a run with
no overrides and the dataclass built with no arguments mean the same thing (the paper's CAS(ME)^2
settings, the reference dataset of conf/). A value the YAML takes from the dataset's schedule
(``${dataset.pretrain_steps}``) has no dataset-free default and is the one thing left out."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import conftest
from pwes.callbacks.gaussian import GaussianConfig
from pwes.config import to_container
from pwes.evaluation.megc import MatchConfig
from pwes.inference.proposals import ProposalConfig
from pwes.model.dfcl import DFCLConfig
from pwes.model.lacp import LACPConfig
from pwes.model.losses import LossConfig
from pwes.model.mcwes import DurationConsistencyConfig, FeatureConsistencyConfig
from pwes.model.mplg import MPLG_VARIANTS, MPLGConfig
from pwes.model.network import NetworkConfig
from pwes.model.pplm import PPLMConfig
from pwes.model.sfnet import SFNetConfig
from pwes.settings import parse_settings

SRC = Path(__file__).resolve().parents[1] / "src" / "pwes"
# (dataclass, the overrides that put its config in the composition, where it is in the config)
CASES = [
    (NetworkConfig, [], "model.network"),
    (LossConfig, [], "model.loss"),
    (MPLGConfig, [], "callbacks.mplg"),
    (DFCLConfig, [], "callbacks.dfcl"),
    (PPLMConfig, ["ablation=pplm"], "callbacks.pplm"),
    (LACPConfig, ["ablation=lacp"], "callbacks.lacp"),
    (SFNetConfig, ["ablation=sfnet"], "callbacks.sfnet"),
    (FeatureConsistencyConfig, ["ablation=mcwes"], "callbacks.feature_consistency"),
    (DurationConsistencyConfig, ["ablation=mcwes"], "callbacks.duration_consistency"),
    (GaussianConfig, ["callbacks/pseudo=gaussian"], "callbacks.gaussian"),
    (MatchConfig, [], "evaluation"),
    (ProposalConfig, [], "proposals"),
]


def yaml_settings(cls: type, overrides: list[str], key: str) -> tuple[object, set[str]]:
    """The dataclass as the composed config builds it (the way its user parses it), and the fields
    whose YAML value is the dataset's schedule."""
    cfg = conftest.compose_train(["dataset=casme2", "dataset.root=/data/x", *overrides])
    node = OmegaConf.select(cfg, key)
    raw = OmegaConf.to_container(node, resolve=False)
    values = to_container(node)
    fields = {f.name for f in dataclasses.fields(cls)}
    scheduled = {k for k, v in raw.items() if isinstance(v, str) and "dataset.pretrain_steps" in v}
    settings = {k: v for k, v in values.items() if k in fields}
    if cls is MPLGConfig:  # the callback builds it from its variant's switches (pwes.callbacks.mplg)
        settings = {**MPLG_VARIANTS[values["variant"]], "name": values["variant"], **settings}
    return parse_settings(cls, settings, key), scheduled


@pytest.mark.parametrize(("cls", "overrides", "key"), CASES, ids=[c[0].__name__ for c in CASES])
def test_dataclass_defaults_equal_the_yaml(cls: type, overrides: list[str], key: str) -> None:
    from_yaml, scheduled = yaml_settings(cls, overrides, key)
    defaults = cls()
    differ = [
        f"{key}.{f.name}: YAML {getattr(from_yaml, f.name)!r} vs dataclass {getattr(defaults, f.name)!r}"
        for f in dataclasses.fields(cls)
        if f.name not in scheduled and getattr(from_yaml, f.name) != getattr(defaults, f.name)
    ]
    assert not differ, "; ".join(differ)


def test_every_parsed_settings_class_is_checked() -> None:
    """Each class handed to parse_settings (or named as a callback's settings_type) is a case above."""
    used: set[str] = set()
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"parse_settings\(([A-Z]\w+Config)\b", text))
        used |= set(re.findall(r"settings_type\s*=\s*([A-Z]\w+Config)\b", text))
        if "_settings(" in text:
            used |= set(re.findall(r"\b_settings\(([A-Z]\w+Config)\b", text))
    assert used, "no settings classes found: the search patterns are out of date"
    assert used <= {c[0].__name__ for c in CASES}, sorted(used - {c[0].__name__ for c in CASES})
