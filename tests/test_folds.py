"""`python -m pwes.folds`: the subjects of a dataset comma-separated, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pwes.folds import main


def test_prints_the_subjects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("PWES_HOME", str(tmp_path))
    assert main(["dataset=synthetic_tiny"]) == 0
    assert capsys.readouterr().out.strip() == "s01,s02,s03"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["foo=1"], "error: Could not override 'foo'. To append to your config use +foo=1"),
        (["dataset=nope"], "error: In 'train': Could not find 'dataset/nope' Available options in 'dataset':"),
        (["foo=["], "error: in the overrides (dataset=synthetic_tiny foo=[): no viable alternative at input '['"),
        (["dataset.snippet_length=abc"], "error: dataset.snippet_length='abc' must be a whole number"),
        (["dataset=casme2", "dataset.root=/nonexistent"], "error: /nonexistent: feature-set folder not found"),
    ],
)
def test_bad_overrides_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, overrides: list[str], message: str) -> None:
    monkeypatch.setenv("PWES_HOME", str(tmp_path))
    assert main(["dataset=synthetic_tiny", *overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
