"""pwes's Hydra plugins. Hydra instantiates sweepers, launchers, config sources and search-path
plugins only from the ``hydra_plugins`` package, so these thin classes name pwes's there:

* the sweeper and launcher (conf/hydra/sweeper/pwes.yaml, conf/hydra/launcher/slurm.yaml): what
  they do is pwes.sweep (pooling that survives a failed job) and pwes.cluster (the SLURM launcher
  that waits for every job);
* the ``experiment`` config group: the table files live in ``experiments/`` at the top of the
  repository (inside the package in a wheel: pwes.config.EXPERIMENTS_DIR), not in conf/, so a
  config source serves them as ``experiment/<name>`` and a search-path entry adds it wherever
  pwes's conf/ is the primary config folder (``pwes.train``, ``pwes.folds``, the compose API).
"""

from __future__ import annotations

import os

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

from pwes.cluster import FoldJobSlurmLauncher
from pwes.config import CONFIG_DIR, EXPERIMENTS_DIR
from pwes.sweep import PoolingSweeperBase

GROUP = "experiment"
SCHEME = "pwes-experiments"


class PoolingSweeper(PoolingSweeperBase):
    """Hydra's basic sweeper that pools a fold sweep even when jobs failed (pwes.sweep)."""


class SlurmLauncher(FoldJobSlurmLauncher):
    """submitit's SLURM launcher that waits for every job (pwes.cluster)."""


class ExperimentsConfigSource(ConfigSource):
    """A folder of YAML files (``experiments/table1.yaml``, ...) served as the config group
    ``experiment`` (``experiment/table1``): the one group of pwes's config that lives outside conf/."""

    def __init__(self, provider: str, path: str) -> None:
        if "://" not in path:
            path = f"{self.scheme()}://{path}"
        super().__init__(provider=provider, path=path)

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def _file(self, config_path: str) -> str | None:
        """The YAML file of ``experiment/<name>``, or None for any other path."""
        group, _, name = self._normalize_file_name(config_path).partition("/")
        if group != GROUP or not name or "/" in name:
            return None
        return os.path.join(self.path, name)

    def load_config(self, config_path: str) -> ConfigResult:
        path = self._file(config_path)
        if path is None or not os.path.isfile(path):
            raise ConfigLoadError(f"Config not found : {config_path} (in {self.path})")
        with open(path, encoding="utf-8") as handle:
            header = ConfigSource._get_header_dict(handle.read(512))
            handle.seek(0)
            return ConfigResult(config=OmegaConf.load(handle), path=f"{self.scheme()}://{self.path}", provider=self.provider, header=header)

    def available(self) -> bool:
        return os.path.isdir(self.path)

    def is_group(self, config_path: str) -> bool:
        return config_path.strip("/") in ("", GROUP) and self.available()

    def is_config(self, config_path: str) -> bool:
        path = self._file(config_path)
        return path is not None and os.path.isfile(path)

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        files: list[str] = []
        if config_path.strip("/") == "":
            if results_filter in (None, ObjectType.GROUP) and self.available():
                files.append(GROUP)
        elif config_path.strip("/") == GROUP and self.available():
            for name in os.listdir(self.path):
                if name.endswith(".yaml"):
                    self._list_add_result(files=files, file_path=f"{GROUP}/{name}", file_name=name, results_filter=results_filter)
        return sorted(set(files))


class ExperimentsSearchPath(SearchPathPlugin):
    """Adds the experiments folder (as the ``experiment`` group) to every Hydra config that pwes's
    conf/ is the primary folder of; other Hydra apps in the environment are left alone."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        ours = os.path.realpath(CONFIG_DIR)
        for element in search_path.get_path():
            path = element.path or ""
            if path.startswith("file://"):
                path = path[len("file://"):]
            elif "://" in path:
                continue
            if path and os.path.realpath(path) == ours:
                search_path.append(provider="pwes-experiments", path=f"{SCHEME}://{EXPERIMENTS_DIR}")
                return
