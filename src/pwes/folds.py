"""Print a dataset's LOSO folds (its subjects) comma-separated, for sweeping ``fold`` as one
job per subject:

    python -m pwes.train -m hydra/launcher=slurm dataset=casme2 dataset.root=PATH \\
        fold=$(python -m pwes.folds dataset=casme2 dataset.root=PATH)
"""

from __future__ import annotations

import sys

from hydra import compose, initialize_config_dir

from pwes.config import CONFIG_DIR, register_resolvers


def main(argv: list[str] | None = None) -> int:
    overrides = list(sys.argv[1:] if argv is None else argv)
    register_resolvers()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(cfg)
        from pwes.protocol import resolve_feature_set

        print(",".join(resolve_feature_set(cfg).subjects))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
