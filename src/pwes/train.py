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
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException, InstantiationException
from omegaconf import DictConfig

from pwes.config import CONFIG_DIR, ConfigError, moved_setting, register_resolvers, settings_without_effect
from pwes.interrupt import InterruptFlag

if TYPE_CHECKING:
    from pwes.run_folder import HydraRecord, RunFolderGuard

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
    from pwes.run_folder import HydraRecord, RunFolderError, RunFolderLock

    quiet_libraries()
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    record = HydraRecord(cfg, run_dir)  # written once the folder's checks pass (on_accept)
    lock = RunFolderLock(run_dir)  # one writer per run folder
    try:
        lock.acquire()
    except RunFolderError as err:
        return fail(err, record)  # nothing put back: the folder is the other process's
    try:
        return run(cfg, run_dir, record)
    finally:
        lock.release()


def run(cfg: DictConfig, run_dir: Path, record: HydraRecord) -> float | None:
    """The run itself, in a run folder this process holds (see :func:`main`)."""
    from pwes.protocol import metrics_json_line, run_protocol
    from pwes.run_folder import RunFolderGuard, interrupted_message

    hydra_cfg = HydraConfig.get()
    guard = RunFolderGuard(run_dir)  # before anything is written: a refusal puts it back
    for override, reason in settings_without_effect(cfg, list(hydra_cfg.overrides.task)):
        log.warning("%s does nothing in this run: %s", override, reason)
    interrupt = InterruptFlag.install()
    try:
        metrics = run_protocol(cfg, run_dir, on_accept=record.write)
    except (KeyboardInterrupt, SystemExit):
        if not interrupt.seen:
            raise
        # Lightning turns Ctrl-C inside fit() into SystemExit(1); either way: say what is kept.
        record.discard()
        print(interrupted_message(run_dir, str(cfg.get("fold"))), file=sys.stderr)
        sys.exit(130)
    except InstantiationException as err:  # Hydra wraps a component's error: one line
        cause = err.__cause__
        if isinstance(cause, ValueError):
            return fail(cause, record, guard)
        return fail(ConfigError(instantiation_line(err)), record, guard)
    except ValueError as err:  # bad input or settings (a refused run folder too): one line, no traceback
        return fail(err, record, guard)
    except OSError as err:  # an output file or folder that cannot be written
        return fail(ConfigError(f"{err.filename or run_dir}: cannot write ({err.strerror or type(err).__name__}); check the output folder {run_dir} or set paths.output_dir / PWES_HOME"), record, guard)
    finally:
        interrupt.restore()
    if metrics is None:  # fold=none: run_protocol named the model it wrote
        return None
    if cfg.get("print_metrics", True):
        print(metrics_json_line(metrics))
    log.info("run folder %s: metrics.json and proposals.csv (pooled), fold-<subject>/ (checkpoints/last.ckpt, metrics.json, proposals.csv), config.yaml", run_dir)
    return float(metrics["f1"])


def instantiation_line(err: InstantiationException) -> str:
    """Hydra's "Error in call to target ..." as one line: the setting, the target, the cause."""
    cause = err.__cause__
    text = " ".join(str(err).split())
    key = text.rsplit("full_key: ", 1)[1] if "full_key: " in text else "a component"
    if cause is not None:
        return f"{key}: {type(cause).__name__}: {' '.join(str(cause).split())}"
    return text


def fail(err: Exception, record: HydraRecord | None = None, guard: RunFolderGuard | None = None) -> None:
    """Report a bad setting or input in one ``error:`` line; exit 2 (in a multirun, fail just
    this job). A refused run folder is left as it was found: its held log lines are dropped and
    what the command wrote is removed (RunFolderGuard); a run that trained something keeps its
    files and its log gets the error."""
    if record is not None:
        record.discard()
    if guard is not None:
        if guard.trained():
            log_to_files(str(err))
        else:
            guard.restore()
    print(f"error: {err}", file=sys.stderr)
    if HydraConfig.get().mode.name == "MULTIRUN":
        raise JobRefused("refused, see its error: line above", reason=str(err)) from err
    sys.exit(2)


class JobRefused(CompactHydraException):
    """A multirun job that printed its one-line error: Hydra fails the job and, when the jobs
    have run, names it without a traceback (a compact Hydra error prints just its message).
    ``reason`` keeps the error itself: a SLURM job's ``error:`` line is in its log, not on the
    console, and the pooling step lists it (pwes.sweep)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def log_to_files(message: str) -> None:
    """An ERROR record for the log files only (the console already has the ``error:`` line)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def refuse_moved_settings(argv: list[str]) -> None:
    """Settings that moved to callbacks.* (conf/callbacks/): one line saying where, exit 2,
    before Hydra would stop at "Key 'mplg' is not in struct"."""
    for arg in argv:
        hint = moved_setting(arg) if "=" in arg and not arg.startswith("-") else None
        if hint:
            print(f"error: {hint}", file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    refuse_moved_settings(sys.argv[1:])
    main()
