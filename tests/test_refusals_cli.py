"""End-to-end refusals of `python -m pwes.train` found at run time: one `error:` line (printed once,
no log ERROR copy), exit 2, and the run folder left as it was found (a new one not left at all)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from pwes.run_folder import RunFolderLock
from test_train_cli import TINY, finished_tiny, folder_state, one_error_line, run_train  # noqa: F401 - finished_tiny is a fixture


def only_line(proc, message: str) -> str:
    """The single error line; its message appears nowhere else in the output."""
    error = one_error_line(proc)
    assert message in error, error
    assert (proc.stdout + proc.stderr).count(message) == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    return error


def test_a_run_folder_another_process_writes_is_refused_and_left_alone(finished_tiny: tuple[Path, Path]) -> None:
    home, run_dir = finished_tiny
    before = folder_state(run_dir)
    lock = RunFolderLock(run_dir)  # this test process plays the other writer (a job still running)
    lock.acquire()
    try:
        error = only_line(run_train(home, *TINY, check=False), f"{run_dir} is being written by another pwes process")
    finally:
        lock.release()
    assert "run_name=NEW" in error
    assert folder_state(run_dir) == before  # nothing read back, rewritten or removed
    rerun = run_train(home, *TINY)  # once it is free, the same command resumes the folder
    assert "fold s02: finished earlier, kept" in rerun.stdout + rerun.stderr


def test_an_unknown_fold_leaves_no_folder(tmp_path: Path) -> None:
    only_line(run_train(tmp_path, "logger=none", "fold=s99", check=False), "fold='s99' is not a subject")
    assert not (tmp_path / "outputs").exists()  # not even the empty runs/<dataset>/ folders


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA device")
def test_trainer_gpu_without_a_gpu_names_the_fix(tmp_path: Path) -> None:
    error = only_line(run_train(tmp_path, "logger=none", "trainer=gpu", check=False), "no CUDA device found")
    assert "use trainer=default" in error and "No supported gpu backend" not in error
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.mplg.threshold=0.5", "model.mplg.threshold moved: use callbacks.mplg.threshold=0.5"),
        ("model/dfcl=off", "model/dfcl moved: use callbacks/contrastive=dfcl or callbacks/contrastive=none"),
    ],
)
def test_old_keys_say_where_they_moved(tmp_path: Path, override: str, message: str) -> None:
    only_line(run_train(tmp_path, "logger=none", override, check=False), message)
    assert not (tmp_path / "outputs").exists()


def test_a_refusal_at_run_time_puts_an_existing_folder_back(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A folder with an unfinished fold: the rerun rewrites config.yaml and the fingerprints before
    the Trainer refuses its settings; the folder is put back byte for byte, times included."""
    home = tmp_path_factory.mktemp("putback")
    run_train(home, *TINY)
    run_dir = home / "outputs" / "runs" / "synthetic_tiny" / "x"
    (run_dir / "fold-s02" / "metrics.json").unlink()  # as if interrupted: fold s02 unfinished
    shutil.rmtree(run_dir / "fold-s02" / "checkpoints")
    before = folder_state(run_dir)
    # trainer.devices does not change results, so the folder is accepted and rewritten first
    only_line(run_train(home, *TINY, "trainer.devices=abc", check=False), "trainer: TypeError: `devices` selected with `CPUAccelerator` should be an int > 0")
    assert folder_state(run_dir) == before
