"""Ships the project's top-level config folders inside the package: a wheel (or ``pip install .``)
gets ``pwes/conf`` and ``pwes/experiments`` copied from ``conf/`` and ``experiments/``, where
pwes.config.shipped_folder finds them. Everything else is in pyproject.toml. An editable install
(``make install``) copies nothing: pwes then reads the checkout's folders."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("conf", "experiments")  # top-level folders of the repository, copied into pwes/


class BuildWithConfig(build_py):
    """build_py that also copies conf/ and experiments/ (YAML files only) into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        here = Path(__file__).resolve().parent
        for name in SHIPPED:
            source, target = here / name, Path(self.build_lib) / "pwes" / name
            if not source.is_dir():
                raise SystemExit(f"error: {source} is missing: the wheel would have no {name}/ (build from a full checkout or sdist)")
            shutil.rmtree(target, ignore_errors=True)
            for path in sorted(source.rglob("*.yaml")):
                if path.is_symlink():
                    continue
                out = target / path.relative_to(source)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, out)


setup(cmdclass={"build_py": BuildWithConfig})
