"""Read W&B's offline run files (``run-<id>.wandb``) back from their records, with W&B's own
protobuf definitions (``wandb.proto.wandb_internal_pb2.Record``); no server involved.

The file is W&B's LevelDB-style log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then
32 KiB blocks of chunks, each ``crc32 (uint32), length (uint16), type (uint8)`` and its data;
a record is one FULL chunk or FIRST, MIDDLE..., LAST. (wandb < 0.19 shipped this reader as
``wandb.sdk.internal.datastore``; the versions since write the same format from wandb-core.)
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[wandb_internal_pb2.Record]:
    """Every record of one ``.wandb`` file, in order; checksums verified."""
    data = path.read_bytes()
    ident, magic, version = HEADER.unpack_from(data, 0)
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path}: not a W&B run file"
    pos, pending, out = HEADER.size, b"", []
    while pos + CHUNK.size <= len(data):
        room = BLOCK - pos % BLOCK
        if room < CHUNK.size:  # the block's tail is padding
            pos += room
            continue
        checksum, length, kind = CHUNK.unpack_from(data, pos)
        if checksum == 0 and length == 0 and kind == 0:  # zero padding up to the block's end
            pos += room
            continue
        chunk = data[pos + CHUNK.size : pos + CHUNK.size + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == checksum, f"{path}: bad checksum at {pos}"
        pos += CHUNK.size + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


@dataclass
class OfflineRun:
    """What one offline run's records hold, decoded."""

    folder: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None

    def media(self, kind: str) -> dict[str, list[dict[str, Any]]]:
        """History values of ``_type`` ``kind`` (``image-file``, ``table-file``) by key."""
        out: dict[str, list[dict[str, Any]]] = {}
        for row in self.history:
            for key, value in row.items():
                if isinstance(value, dict) and value.get("_type") == kind:
                    out.setdefault(key, []).append(value)
        return out

    def table(self, key: str) -> dict[str, Any]:
        """The last logged table under ``key``, read from its JSON file (columns, data)."""
        value = self.media("table-file")[key][-1]
        return json.loads((self.folder / "files" / value["path"]).read_text())


def _items(items: Any) -> dict[str, Any]:
    """Record items as a dict; wandb-core writes a nested value as one item per leaf
    (``nested_key`` its path), rebuilt here into nested dicts."""
    out: dict[str, Any] = {}
    for item in items:
        path = [item.key] if item.key else list(item.nested_key)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = json.loads(item.value_json)
    return out


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def read_run(folder: Path) -> OfflineRun:
    """Decode one ``offline-run-*`` folder's ``run-<id>.wandb`` file."""
    (path,) = folder.glob("run-*.wandb")
    run = OfflineRun(folder)
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.name, run.group, run.job_type = r.run_id, r.display_name, r.run_group, r.job_type
            _merge(run.config, _items(r.config.update))
        elif kind == "config":
            _merge(run.config, _items(record.config.update))
        elif kind == "summary":
            _merge(run.summary, _items(record.summary.update))
        elif kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def read_runs(wandb_dir: Path) -> list[OfflineRun]:
    """Every offline run under a ``wandb/`` folder, oldest first."""
    return [read_run(f) for f in sorted(wandb_dir.glob("offline-run-*"))]
