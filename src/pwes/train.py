"""Train and test PWES under the leave-one-subject-out protocol.

    python -m pwes.train                                  # embedded synthetic default, all folds
    python -m pwes.train dataset=samm dataset.root=PATH fold=all
    python -m pwes.train -m experiment=table4             # a table of the paper as a sweep
"""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from pwes.config import CONFIG_DIR, ConfigError, register_resolvers

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
    from pwes.run_folder import HydraRecord, interrupted_message

    quiet_libraries()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    record = HydraRecord(cfg, run_dir)
    if not (run_dir / "config.yaml").exists():  # a new folder: nothing to protect, record the command now
        record.write()
    interrupt = InterruptFlag()
    try:
        metrics = run_protocol(cfg, run_dir, on_accept=record.write)
    except (KeyboardInterrupt, SystemExit):
        if not interrupt.seen:
            raise
        # Lightning turns Ctrl-C inside fit() into SystemExit(1); either way: say what is kept.
        record.discard()
        print(interrupted_message(run_dir, str(cfg.get("fold"))), file=sys.stderr)
        sys.exit(130)
    except InstantiationException as err:  # Hydra wraps a component's one-line settings error
        err = err.__cause__ if isinstance(err.__cause__, ValueError) else err
        return fail(err, record)
    except ValueError as err:  # bad input or settings (a refused run folder too): one line, no traceback
        return fail(err, record)
    except OSError as err:  # an output file or folder that cannot be written
        return fail(ConfigError(f"{err.filename or run_dir}: cannot write ({err.strerror or type(err).__name__}); check the output folder {run_dir} or set paths.output_dir / PWES_HOME"), record)
    finally:
        interrupt.restore()
    if metrics is None:
        return None
    if cfg.get("print_metrics", True):
        print(metrics_json_line(metrics))
    return float(metrics["f1"])


class InterruptFlag:
    """Notes a Ctrl-C (SIGINT) before raising KeyboardInterrupt as Python does, so the entry point
    can tell an interruption from other exits (Lightning turns it into SystemExit(1))."""

    def __init__(self) -> None:
        self.seen = False
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread (some launchers): keep Python's default
            self.previous = None

    def _handle(self, signum: int, frame: object) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def restore(self) -> None:
        if self.previous is not None:
            try:
                signal.signal(signal.SIGINT, self.previous)
            except ValueError:
                pass


def fail(err: Exception, record: object | None = None) -> None:
    """Report a bad setting or input in one line; exit 2 (in a multirun, fail just this job).
    A refused run folder is left as it was: its held log lines are dropped, nothing is written."""
    log.error("%s", err)
    if record is not None:
        record.discard()  # type: ignore[attr-defined]
    print(f"error: {err}", file=sys.stderr)
    if HydraConfig.get().mode.name == "MULTIRUN":
        raise err
    sys.exit(2)


if __name__ == "__main__":
    main()
