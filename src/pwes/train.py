"""Train and test PWES under the leave-one-subject-out protocol.

    python -m pwes.train                                  # embedded synthetic default, all folds
    python -m pwes.train dataset=samm dataset.root=PATH fold=all
    python -m pwes.train -m experiment=table4             # a table of the paper as a sweep
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from pwes.config import CONFIG_DIR, register_resolvers

register_resolvers()
log = logging.getLogger("pwes")


def quiet_libraries() -> None:
    """Keep the console to pwes's own progress lines and Lightning's bar: Lightning's INFO
    chatter (device summary, tips) and one known deprecation warning are dropped."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the pooled F1 (for sweepers that optimise it)."""
    from pwes.protocol import metrics_json_line, run_protocol

    quiet_libraries()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = run_protocol(cfg, run_dir)
    except InstantiationException as err:  # Hydra wraps a component's one-line settings error
        err = err.__cause__ if isinstance(err.__cause__, ValueError) else err
        return fail(err)
    except ValueError as err:  # bad input or settings: one line, no traceback
        return fail(err)
    if metrics is None:
        return None
    if cfg.get("print_metrics", True):
        print(metrics_json_line(metrics))
    return float(metrics["f1"])


def fail(err: Exception) -> None:
    """Report a bad setting or input in one line; exit 2 (in a multirun, fail just this job)."""
    log.error("%s", err)
    print(f"error: {err}", file=sys.stderr)
    if HydraConfig.get().mode.name == "MULTIRUN":
        raise err
    sys.exit(2)


if __name__ == "__main__":
    main()
