"""Which settings of a resolved config decide a run's results, and how two configs differ in
them: what `pwes.train` checks before it resumes a run folder (`pwes.run_folder`), what
`pwes.rescore` checks before it re-scores one, and which overrides name run and multirun folders
(the resolvers of `pwes.config`); plus the run record's schema (which settings an older folder's
config may lack)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Settings that do not change results: ignored when checking that a resumed folder matches, and
# left out of run and multirun folder names (folder_name_overrides), so a command that differs
# from another only in them finds (and resumes) the other's folder. The one list of them: the
# Hydra config (conf/hydra/default.yaml) names folders through pwes.config's resolvers, which
# call folder_name_overrides below.
NON_RESULT_KEYS = ("logger", "resume", "print_metrics", "paths", "run_name", "sweep_name", "hydra")
# Dotted keys (and everything below them) that never change results: where the data lives (the
# fingerprint compares the data itself, so moved data resumes) and the logged-only diagnostics.
NON_RESULT_DOTTED = ("dataset.root", "callbacks.diagnostics", "callbacks.grad_share")
NON_RESULT_TRAINER_KEYS = ("enable_progress_bar", "accelerator", "devices", "log_every_n_steps")
# Overrides left out of folder names although they change results: an experiment names its
# multirun folder itself (sweep_name: table<N>_<dataset>) and its jobs by their swept settings.
FOLDER_NAME_ONLY_KEYS = ("experiment",)


def result_neutral(key: str) -> bool:
    """Whether the setting ``key`` (dotted, e.g. ``dataset.root``; a config group such as
    ``hydra/launcher`` counts as ``hydra.launcher``) and everything below it leave results unchanged."""
    key = key.replace("/", ".")
    top, _, rest = key.partition(".")
    if top in NON_RESULT_KEYS:
        return True
    if any(key == d or key.startswith(d + ".") for d in NON_RESULT_DOTTED):
        return True
    return top == "trainer" and rest.split(".", 1)[0] in NON_RESULT_TRAINER_KEYS


@lru_cache(maxsize=4096)
def override_key(line: str) -> str:
    """The setting or config group a command-line override sets (``~callbacks.diagnostics`` ->
    ``callbacks.diagnostics``, ``+a.b=1`` -> ``a.b``), as Hydra's parser reads it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return str(OverridesParser.create().parse_overrides([line])[0].key_or_group)
    except HydraException:  # not an override Hydra would have accepted: the text before "="
        return line.split("=", 1)[0].lstrip("+~").split("@", 1)[0]


def folder_name_overrides(overrides: Iterable[str]) -> str:
    """The part of a command's overrides that names its run (or multirun) folder: every override
    of a setting that can change results, sorted, joined as ``k=v,k=v`` (what Hydra's
    ``hydra.job.override_dirname`` gave with the result-neutral keys excluded)."""
    lines = [str(line) for line in overrides]
    kept = sorted(line for line in lines if not (result_neutral(key := override_key(line)) or key in FOLDER_NAME_ONLY_KEYS))
    return ",".join(kept)


RUN_SCHEMA = 2
"""Version of a run folder's record (``run.json``, written by pwes.run_folder). 1: no run.json,
folders written before the version was recorded, whose config.yaml may lack any setting of
LEGACY_SETTINGS; 2: config.yaml holds every setting listed there. A setting added later is
listed with ``since=3`` and RUN_SCHEMA raised to 3, and so on: a folder of schema N may lack
exactly the settings listed with a ``since`` above N."""


@dataclass(frozen=True)
class Legacy:
    """A setting added after run folders existed: absent from the config of a folder whose schema
    is below ``since``, it matches a new config that has ``value`` (what the code did before the
    setting), or any value while the setting ``unless`` names still has the value that makes it inert."""

    value: Any
    unless: tuple[str, Any] | None = None
    since: int = 2

    def matches(self, key: str, new: Mapping[str, Any]) -> bool:
        if self.unless is not None and new.get(self.unless[0]) == self.unless[1]:
            return True
        return new.get(key) == self.value



# Settings added since run folders were first fingerprinted, with the value that reproduces the
# code before them. A finished fold written before a setting existed is resumed when the new
# config has that value (the same results); any other value is a difference and is refused.
# Settings whose old behaviour is not available (model.network.dropout_impl=fast changed the
# numbers; its legacy value is torch) are listed too, so an old folder resumes only with it.
LEGACY_SETTINGS: dict[str, Legacy] = {
    "model.network.topk": Legacy("divisors"),
    "model.network.topk_seconds": Legacy(None, unless=("model.network.topk", "divisors")),
    "model.network.topk_fps": Legacy(None, unless=("model.network.topk", "divisors")),
    "model.network.topk_stride": Legacy(None, unless=("model.network.topk", "divisors")),
    "model.network.dropout_impl": Legacy("torch"),
    "callbacks.mplg.weights_in_loss": Legacy(True),
    "callbacks.mplg.coarse_mask_in_loss": Legacy(False),
    "callbacks.mplg.background": Legacy("lowest_0.6T"),
    "callbacks.mplg.background_min": Legacy(None, unless=("callbacks.mplg.background", "lowest_0.6T")),
    "proposals.max_seconds": Legacy(None),
    "evaluation.validation_subjects": Legacy(0),
    "evaluation.calibration_source": Legacy("train"),
    "evaluation.point_hit_extent": Legacy(False),
    "evaluation.point_hit_max_seconds": Legacy(None, unless=("evaluation.point_hit_extent", False)),
}


def comparable_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that determines results, flattened to dotted keys."""
    return {k: v for k, v in flatten(dict(config)).items() if not result_neutral(k)}


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are leaves)."""
    if not isinstance(tree, Mapping) or (prefix and not tree):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], schema: int = 1) -> list[str]:
    """``setting: old vs new`` for every result-relevant setting that differs; ``old`` was
    written under run-record ``schema`` (RUN_SCHEMA), so a setting it lacks because it did not
    exist yet (LEGACY_SETTINGS) matches its legacy value."""
    a, b = comparable_config(old), comparable_config(new)
    missing = "(unset)"

    def predates(k: str) -> bool:
        legacy = LEGACY_SETTINGS.get(k)
        return k not in a and legacy is not None and schema < legacy.since and legacy.matches(k, b)

    return [f"{k}: {a.get(k, missing)} vs {b.get(k, missing)}" for k in sorted(set(a) | set(b)) if a.get(k, missing) != b.get(k, missing) and not predates(k)]
