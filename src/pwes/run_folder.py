"""A run folder's record and the checks that let a rerun resume it safely.

A rerun of the same command reuses its run folder and keeps the finished folds. That is only
right when the folds were trained with the same settings on the same data, so before anything is
written (Hydra's ``.hydra/`` record and log included) the folder is checked:

* ``config.yaml`` against the new config: a difference is refused, naming each setting with its
  old and new value (``model.dfcl.temperature: 0.3 vs 1.0``); ``run.json`` says the record's
  schema (pwes.run_config.RUN_SCHEMA), i.e. which later-added settings config.yaml may lack;
* each finished fold's ``fingerprint.json`` against the data now on disk: the content hashes of
  ``videos.csv`` and ``annotations.csv`` and, per video, the feature file's size, modification
  time and content hash (hashed once; later runs re-hash only files whose size or time changed,
  so a rerun on CAS(ME)^3's 956 videos costs a few ``stat`` calls).

Changed data is refused, not retrained: in leave-one-subject-out every fold trains on every other
subject, so any change to the data touches every fold and "retraining the changed folds" is the
same as a new run (``run_name=NEW``, or delete the folder).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pwes import io
from pwes.config import ConfigError
from pwes.data.layout import FeatureSet
from pwes.run_config import RUN_SCHEMA, config_differences

FINGERPRINT = "fingerprint.json"
RUN_RECORD = "run.json"  # {"schema": RUN_SCHEMA}: which settings the folder's config.yaml can lack


LOCK = ".pwes.lock"  # held (fcntl) by the process writing the run folder; empty, never rewritten
MAX_LISTED = 4  # differences named in one refusal line


class RunFolderError(ConfigError):
    """An existing run folder cannot be reused by this command; the folder was left untouched."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_fingerprint(feature_set: FeatureSet, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a fold is trained and tested on: table hashes and per-video feature file facts.
    Feature hashes are taken from ``previous`` where size and modification time are unchanged."""
    root = Path(feature_set.root)
    old = (previous or {}).get("features") or {}
    features: dict[str, dict[str, Any]] = {}
    for name, info in feature_set.videos.items():
        stat = Path(info.feature_path).stat()
        entry = {"file": Path(info.feature_path).name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        before = old.get(name) or {}
        same_stat = all(before.get(k) == entry[k] for k in ("file", "size", "mtime_ns"))
        entry["sha256"] = before["sha256"] if same_stat and before.get("sha256") else sha256_file(Path(info.feature_path))
        features[name] = entry
    return {
        "root": str(root),
        "videos.csv": sha256_file(root / "videos.csv"),
        "annotations.csv": sha256_file(root / "annotations.csv"),
        "features": features,
    }


def fingerprint_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The parts of the data that differ, in words (content, not paths or file times)."""
    root = new.get("root", "")
    parts = [f"{table} ({Path(root) / table})" for table in ("annotations.csv", "videos.csv") if old.get(table) != new.get(table)]
    before, now = old.get("features") or {}, new.get("features") or {}
    for name in now:
        if name not in before:
            parts.append(f"video {name!r} added")
        elif before[name].get("sha256") != now[name].get("sha256"):
            parts.append(f"features of video {name!r} ({Path(root) / 'features' / now[name]['file']})")
    parts += [f"video {name!r} removed" for name in before if name not in now]
    return parts


def listed(items: list[str]) -> str:
    shown = "; ".join(items[:MAX_LISTED])
    return shown + (f"; and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def finished_folds(run_dir: Path) -> list[Path]:
    """Fold folders holding metrics.json (finished). (fold=none's model/ is always retrained.)"""
    return sorted(p.parent for p in run_dir.glob("fold-*/metrics.json"))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RunFolderError(f"{path}: unreadable ({err}); its fold cannot be checked: pass run_name=NEW or delete the folder") from None


def check_run_folder(run_dir: Path, config: Mapping[str, Any], fingerprint: Mapping[str, Any] | None, resume: bool) -> None:
    """Refuse to reuse ``run_dir`` when its finished folds came from other settings or other data."""
    path = run_dir / "config.yaml"
    finished = finished_folds(run_dir)
    if not finished:
        return
    names = ", ".join(p.name for p in finished[:5]) + (", ..." if len(finished) > 5 else "")
    if not resume:
        raise RunFolderError(f"{run_dir} already holds finished folds ({names}); resume=false refuses to reuse it: pass run_name=NEW or delete the folder")
    if path.exists():
        try:
            old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise RunFolderError(f"{path}: unreadable ({type(err).__name__}); its finished folds ({names}) cannot be checked: pass run_name=NEW or delete the folder") from None
        changed = config_differences(old if isinstance(old, Mapping) else {}, config, run_schema(run_dir))
        if changed:
            raise RunFolderError(f"{path} was written by a different config ({listed(changed)}); its finished folds ({names}) cannot be pooled with this run: pass run_name=NEW or delete the folder")
    if fingerprint is None:
        return
    for fold in finished:
        record = fold / FINGERPRINT
        if not record.exists():
            raise RunFolderError(f"{fold}: finished without a data fingerprint ({FINGERPRINT}, written since pwes checks resumed data), so its data cannot be checked: pass run_name=NEW or delete the folder")
        recorded = read_json(record)
        changed = fingerprint_differences(recorded, fingerprint)
        if changed:
            moved = recorded.get("root") != fingerprint.get("root")
            where = f" (it was trained on {recorded.get('root')}, this command reads dataset.root={fingerprint.get('root')}; dataset.root does not name the run folder, so moved data resumes, but other data needs its own folder)" if moved else ""
            raise RunFolderError(
                f"{run_dir}: the data changed since {fold.name} was trained{where} (changed: {listed(changed)}); its finished folds ({names}) cannot be pooled with new data: "
                "pass run_name=NEW for a new run, or delete the folder"
            )


def previous_fingerprint(run_dir: Path) -> dict[str, Any] | None:
    """The run folder's last recorded fingerprint (to reuse unchanged files' hashes), if any."""
    path = run_dir / FINGERPRINT
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None


def run_schema(run_dir: Path) -> int:
    """A folder's run-record schema (pwes.run_config.RUN_SCHEMA): 1 without run.json (written before
    the schema was recorded); an invalid one, or one from a newer pwes, is refused."""
    path = run_dir / RUN_RECORD
    schema = (record.get("schema") if isinstance(record := read_json(path), dict) else None) if path.exists() else 1
    if isinstance(schema, bool) or not isinstance(schema, int) or not 1 <= schema <= RUN_SCHEMA:
        raise RunFolderError(f"{path}: run-record schema {schema!r}, this pwes knows 1 to {RUN_SCHEMA} (a newer pwes wrote it?); update pwes, or pass run_name=NEW")
    return schema


def write_run_record(run_dir: Path, config: Mapping[str, Any], fingerprint: Mapping[str, Any] | None) -> None:
    """config.yaml, fingerprint.json and run.json (the schema) of the run (after the checks passed)."""
    io.write_text(run_dir / "config.yaml", yaml.safe_dump(dict(config), sort_keys=False))
    io.write_json(run_dir / RUN_RECORD, {"schema": RUN_SCHEMA})
    if fingerprint is not None:
        io.write_json(run_dir / FINGERPRINT, fingerprint)


class HydraRecord:
    """Hydra's ``.hydra/`` record of the command (config.yaml, hydra.yaml, overrides.yaml), written
    by us instead of Hydra (``hydra.output_subdir: null``) so that a refused command leaves an
    existing run folder's record untouched. Log records meant for the run folder's log file are
    held back the same way until the folder is accepted."""

    def __init__(self, task_cfg: DictConfig, run_dir: Path) -> None:
        from hydra.core.hydra_config import HydraConfig

        self.run_dir = run_dir
        self.task_cfg = OmegaConf.to_yaml(task_cfg)
        hydra_cfg = HydraConfig.instance().cfg
        self.hydra_cfg = OmegaConf.to_yaml(hydra_cfg) if hydra_cfg is not None else None
        self.overrides = OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task) if hydra_cfg is not None else "[]\n"
        self.held = _HeldFileLogs(run_dir)

    def write(self) -> None:
        """Write the record and release the held log lines into the run folder's log file."""
        out = self.run_dir / ".hydra"
        io.write_text(out / "config.yaml", self.task_cfg)
        if self.hydra_cfg is not None:
            io.write_text(out / "hydra.yaml", self.hydra_cfg)
        io.write_text(out / "overrides.yaml", self.overrides)
        self.held.pass_on()

    def discard(self) -> None:
        """The folder was refused: drop the held log lines, write nothing."""
        self.held.drop()


class _HeldFileLogs(logging.Handler):
    """Stands in for the root logger's file handlers that write inside ``run_dir``, keeping their
    records until :meth:`pass_on` (the run folder accepted) or :meth:`drop` (refused).
    (Not ``release``: logging.Handler uses that name for its lock.)"""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        root = logging.getLogger()
        inside = str(run_dir.resolve())
        self.targets = [h for h in root.handlers if isinstance(h, logging.FileHandler) and str(Path(h.baseFilename).resolve()).startswith(inside)]
        self.records: list[logging.LogRecord] = []
        if self.targets:
            for handler in self.targets:
                root.removeHandler(handler)
            root.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def pass_on(self) -> None:
        root = logging.getLogger()
        if self not in root.handlers:
            return
        root.removeHandler(self)
        for handler in self.targets:
            root.addHandler(handler)
            for record in self.records:
                if record.levelno >= handler.level:
                    handler.handle(record)
        self.records.clear()

    def drop(self) -> None:
        logging.getLogger().removeHandler(self)
        self.records.clear()


SAVED_BYTES = 4 << 20  # files up to this size are kept in memory to be put back on a refusal


class RunFolderGuard:
    """What a run folder held when the command started, so that a command refused at run time
    (an unknown fold, a trainer that cannot start, ...) leaves it exactly as it found it: files
    and folders the command created are removed (the whole folder when the command created it),
    files it rewrote are put back with their modification times. Nothing that existed before is
    deleted, and a command that saved a checkpoint (it trained something) keeps what it wrote."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.created_top = CREATED.get(str(run_dir.resolve()))
        self.files: dict[str, tuple[int, int, bytes | None]] = {}
        self.folders: set[str] = set()
        for path in run_dir.rglob("*") if run_dir.is_dir() else []:
            rel = str(path.relative_to(run_dir))
            if path.is_dir():
                self.folders.add(rel)
            elif path.is_file():
                stat = path.stat()
                data = path.read_bytes() if stat.st_size <= SAVED_BYTES and path.suffix != ".ckpt" else None
                self.files[rel] = (stat.st_size, stat.st_mtime_ns, data)
        # Hydra makes the folder (and an empty train.log) before pwes runs, and RunFolderLock its
        # lock file: then it is new.
        self.fresh = self.created_top is not None or (not self.folders and all(rel in ("train.log", LOCK) and size == 0 for rel, (size, _, _) in self.files.items()))

    def trained(self) -> bool:
        """Whether the command wrote a checkpoint (then its results are kept)."""
        for path in self.run_dir.rglob("*.ckpt"):
            before = self.files.get(str(path.relative_to(self.run_dir)))
            if before is None or before[:2] != (path.stat().st_size, path.stat().st_mtime_ns):
                return True
        return False

    def restore(self) -> None:
        """Undo what the refused command wrote (see the class docstring)."""
        if not self.run_dir.is_dir() or self.trained():
            return
        if self.fresh:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            CREATED.setdefault(str(self.run_dir.resolve()), self.created_top or self.run_dir.resolve())
            remove_created_folders(self.run_dir)
            return
        for path in sorted(self.run_dir.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            rel = str(path.relative_to(self.run_dir))
            if path.is_dir() and rel not in self.folders:
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_file() and rel not in self.files:
                path.unlink(missing_ok=True)
        for rel, (size, mtime, data) in self.files.items():
            path = self.run_dir / rel
            if data is None or not path.is_file() or (path.stat().st_size, path.stat().st_mtime_ns) == (size, mtime):
                continue
            path.write_bytes(data)
            os.utime(path, ns=(mtime, mtime))


class RunFolderLock:
    """One writer per run folder: an exclusive ``fcntl`` lock on ``<run folder>/.pwes.lock``, held
    while the command runs. A second pwes process given the same folder (the same command started
    twice, or a multirun rerun while its first submission still runs on the cluster) is refused
    before it reads or writes anything. The kernel (or the NFS lock manager) drops the lock when
    its process ends, however it ends (a cancelled SLURM job included), so a rerun is never
    blocked by a stale lock; the empty file stays."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; :class:`RunFolderError` when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EACCES, errno.EAGAIN):
                raise RunFolderError(f"{self.path.parent} is being written by another pwes process (it holds {self.path}): two runs must not write one run folder; wait for that one to end (its folds are then kept), or pass run_name=NEW") from None
            raise
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock
            self.fd = None


def interrupted_message(run_dir: Path, fold: str) -> str:
    """What a Ctrl-C leaves behind, and how to continue."""
    kept = [p.name for p in finished_folds(run_dir)]
    command = " ".join(["python -m pwes.train", *map(shlex.quote, sys.argv[1:])])
    kept_text = f"kept {len(kept)} finished fold(s) ({', '.join(kept)})" if kept else "no fold had finished"
    rest = "; unfinished folds are retrained from scratch" if str(fold) != "none" else ""
    return f"interrupted: {kept_text} in {run_dir}{rest}; resume with the same command: {command}"


CREATED: dict[str, Path] = {}
"""Output folders the checks below created in this process -> the topmost folder created with it
(removed again when the command is refused; see RunFolderGuard and pwes.sweeper)."""


def remove_created_folders(folder: Path) -> None:
    """Remove ``folder`` and the parents created with it by :func:`check_writable`, where empty."""
    top = CREATED.pop(str(folder.resolve()), None)
    if top is None:
        return
    current = folder.resolve()
    while True:
        if current.exists():
            try:
                current.rmdir()  # only an empty folder
            except OSError:
                return
        if current == top or current.parent == current:
            return
        current = current.parent


def check_writable(folder: Path, setting: str) -> None:
    """Create ``folder`` (and its parents) and check a file can be written in it; remember
    which folders were created (:data:`CREATED`)."""
    try:
        missing = [p for p in [folder.resolve(), *folder.resolve().parents] if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        if missing:
            CREATED[str(folder.resolve())] = missing[-1]
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        where = f"{err.filename}: cannot write the output folder {folder}" if err.filename and str(err.filename) != str(folder) else f"{folder}: cannot write this output folder"
        raise ConfigError(f"{where} ({err.strerror or type(err).__name__}); set {setting} or PWES_HOME to a writable place") from None


class CheckOutputFolder(Callback):
    """Hydra callback: before Hydra creates the run (or sweep) folder, check it can be written,
    so that an unwritable place is one line, not Hydra's traceback."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")

    @staticmethod
    def _check(config: DictConfig, key: str) -> None:
        from hydra.core.hydra_config import HydraConfig

        try:
            HydraConfig.instance().set_config(config)
            folder = Path(str(OmegaConf.select(config, key)))
            check_writable(folder, "paths.output_dir")
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except Exception:  # noqa: BLE001 - resolution problems are reported by Hydra itself right after
            return
