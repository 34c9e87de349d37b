"""The one rule for video and subject ids (:data:`SAFE_ID`): they name fold folders
(``fold-<subject>``), feature files (``features/<video>.npz``), CSV cells and Hydra overrides
(``fold=<subject>``), so only ASCII letters, digits, ``.``, ``_`` and ``-``, starting with a letter
or digit (never ``''``, ``.``, ``..``, ``-x``, a path, a comma or a control character)."""

from __future__ import annotations

import re

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_ID_LENGTH = 128


def id_problem(value: str) -> str | None:
    """What makes ``value`` unusable as a video or subject id, or None when it is a safe id.

    The one rule for ids (:data:`SAFE_ID`): ASCII letters, digits, ``.``, ``_`` and ``-``,
    starting with a letter or digit, at most :data:`MAX_ID_LENGTH` characters.
    """
    if not value.strip():
        return "is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is longer than {MAX_ID_LENGTH} characters"
    if SAFE_ID.fullmatch(value):
        return None
    bad = next((c for c in value if not re.fullmatch(r"[A-Za-z0-9._-]", c)), None)
    if bad is not None:
        return f"contains {bad!r}"
    return "must start with a letter or digit"
