"""Print a dataset's LOSO folds (its subjects) comma-separated, for sweeping ``fold`` as one
job per subject:

    python -m pwes.train -m hydra/launcher=slurm dataset=casme2 dataset.root=PATH \\
        fold=$(python -m pwes.folds dataset=casme2 dataset.root=PATH)
"""

from __future__ import annotations

import sys

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

from pwes.config import CONFIG_DIR, register_resolvers


def main(argv: list[str] | None = None) -> int:
    overrides = list(sys.argv[1:] if argv is None else argv)
    register_resolvers()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(cfg)
        from pwes.config import validate_dataset_settings
        from pwes.protocol import resolve_feature_set

        validate_dataset_settings(cfg)

        print(",".join(resolve_feature_set(cfg).subjects))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (HydraException, OmegaConfBaseException) as err:  # unknown override, bad syntax, missing group option
        where = f"in the overrides ({' '.join(overrides)}): " if isinstance(err, OverrideParseException) else ""
        print(f"error: {where}{one_line(err)}", file=sys.stderr)
        return 2
    return 0


def one_line(err: Exception) -> str:
    """Hydra's multi-line composition errors as one line (the overrides given, then the reason)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip() and not line.strip().startswith(("provider=", "See https://", "Config search path"))]
    return " ".join(lines) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
