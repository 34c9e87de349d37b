"""The import report: counts, repairs, drops, warnings and mismatches of one import, printed by
``python -m pwes.prepare`` and written beside the layout as ``import.json``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pwes.data.layout import EXPRESSION_TYPES

EXAMPLES_PER_REASON = 3


@dataclass
class ImportReport:
    """Everything an import did that a user should know: counts, repairs, drops, mismatches."""

    dataset: str
    rows_read: int = 0
    repaired: Counter = field(default_factory=Counter)  # reason -> rows
    dropped: Counter = field(default_factory=Counter)  # reason -> rows
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> first sources
    video_repairs: Counter = field(default_factory=Counter)  # reason -> videos
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # kept as read, but probably a mistake in the source
    missing_features: dict[str, int] = field(default_factory=dict)  # annotated video key -> rows
    missing_subjects: list[str] = field(default_factory=list)  # annotated subjects without any feature file
    unannotated_videos: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)
    length_sources: Counter = field(default_factory=Counter)  # where num_frames came from -> videos
    videos: int = 0
    subjects: int = 0
    type_counts: dict[str, int] = field(default_factory=lambda: {t: 0 for t in EXPRESSION_TYPES})
    settings: dict[str, Any] = field(default_factory=dict)

    def _example(self, reason: str, source: str, detail: str | None) -> None:
        examples = self.examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append(f"{source} ({detail})" if detail else source)

    def repair(self, reason: str, source: str, detail: str | None = None) -> None:
        """Count one row changed for ``reason``."""
        self.repaired[reason] += 1
        self._example(reason, source, detail)

    def drop(self, reason: str, source: str, detail: str | None = None) -> None:
        """Count one row left out for ``reason``."""
        self.dropped[reason] += 1
        self._example(reason, source, detail)

    @property
    def expressions(self) -> int:
        """Expressions written."""
        return sum(self.type_counts.values())

    def summary(self) -> str:
        """The multi-line summary printed by ``python -m pwes.prepare``."""
        s = self.settings
        lines = [
            f"prepared {self.dataset} in {s.get('out', '?')} "
            f"(snippet length {s.get('snippet_length')}, stride {s.get('stride')}, fps {s.get('fps')})",
            f"  videos: {self.videos} from {self.subjects} subjects; {len(self.unannotated_videos)} without annotations",
            f"  expressions: {self.expressions} (ME {self.type_counts['ME']}, MaE {self.type_counts['MaE']}) "
            f"from {self.rows_read} annotation rows",
            "  video lengths: " + (", ".join(f"{n} from {src}" for src, n in sorted(self.length_sources.items())) or "none"),
        ]
        for title, counts in (("repairs (a row may have several)", self.repaired), ("dropped rows", self.dropped)):
            lines.append(f"  {title}: {sum(counts.values())}")
            for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"    {n} x {reason}; e.g. {'; '.join(self.examples.get(reason, []))}")
        for reason, n in sorted(self.video_repairs.items()):
            lines.append(f"  repaired videos: {n} x {reason}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        for warning in self.warnings:
            lines.append(f"  warning: {warning}")
        if self.missing_features:
            rows = sum(self.missing_features.values())
            lines.append(
                f"  annotated videos with no features: {len(self.missing_features)} "
                f"({rows} row{'s' if rows != 1 else ''} left out; --strict refuses them)"
            )
            lines.append("    " + ", ".join(f"{k} ({n} row{'s' if n != 1 else ''})" for k, n in self.missing_features.items()))
        if self.missing_subjects:
            lines.append(f"  annotated subjects with no features at all (left out): {len(self.missing_subjects)}")
            lines.append("    " + ", ".join(self.missing_subjects))
        if self.unannotated_videos:
            lines.append(f"  videos with features but no annotations (kept, expression-free): {len(self.unannotated_videos)}")
            lines.append("    " + ", ".join(self.unannotated_videos))
        if self.ignored_files:
            lines.append(f"  feature files whose names are not {self.dataset} videos (ignored): {len(self.ignored_files)}")
            lines.append("    " + ", ".join(self.ignored_files))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, written beside the layout as ``import.json``."""
        return {
            "dataset": self.dataset,
            "settings": self.settings,
            "videos": self.videos,
            "subjects": self.subjects,
            "expressions": dict(self.type_counts),
            "rows_read": self.rows_read,
            "repaired": dict(self.repaired),
            "dropped": dict(self.dropped),
            "examples": self.examples,
            "video_repairs": dict(self.video_repairs),
            "notes": self.notes,
            "warnings": self.warnings,
            "annotated_videos_without_features": self.missing_features,
            "annotated_subjects_without_features": self.missing_subjects,
            "videos_without_annotations": self.unannotated_videos,
            "ignored_feature_files": self.ignored_files,
            "video_lengths_from": dict(self.length_sources),
        }

