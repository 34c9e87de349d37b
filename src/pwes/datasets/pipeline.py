"""The import pipeline: read annotations, convert frames (1-based -> 0-based, once, in
:func:`~.frames.normalize`), match rows to feature files by video key, fit intervals into their
videos, check feature lengths against the snippet settings, write the layout atomically and
validate it with :func:`pwes.data.layout.load_feature_set`. ``docs/datasets.md`` has the rules.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pwes import io
from pwes.datasets import features, lgsnet_csv
from pwes.datasets.common import DatasetImportError, Expression, RawExpression, VideoName, natural_key
from pwes.datasets.registry import ANNOTATION_FORMATS, DATASETS, AnnotationInput, DatasetSpec
from pwes.datasets.frames import FrameRules, normalize, parse_unknown_offset, parse_zero_onset
from pwes.datasets.report import ImportReport
from pwes.data.ids import id_problem
from pwes.data.layout import SNIPPET_SLACK, expected_snippets, load_feature_set, write_feature_set

REPORT_FILE = "import.json"
NAMES_SHOWN = 5  # feature names listed when none is a video of the dataset


@dataclass
class _Video:
    """A feature video on its way into the layout."""

    name: VideoName
    source: features.FeatureSource
    info: features.FeatureInfo
    num_frames: int = 0


class _LazyFeatures(Mapping[str, tuple[np.ndarray, np.ndarray]]):
    """Video id -> (rgb, flow), loaded only when written: one video in memory at a time."""

    def __init__(self, videos: Sequence[_Video]) -> None:
        self._videos = {v.name.video: v for v in videos}

    def __getitem__(self, video: str) -> tuple[np.ndarray, np.ndarray]:
        entry = self._videos[video]
        return features.load(entry.source, entry.info.num_snippets)

    def __iter__(self) -> Iterator[str]:
        return iter(self._videos)

    def __len__(self) -> int:
        return len(self._videos)


def import_dataset(
    dataset: str,
    annotations: Sequence[str | Path | AnnotationInput],
    features_dir: str | Path,
    out: str | Path,
    *,
    annotation_format: str = "official",
    frames_dir: str | Path | None = None,
    flow_features_dir: str | Path | None = None,
    snippet_length: int | None = None,
    stride: int | None = None,
    fps: float | None = None,
    first_frame: int = 1,
    unknown_offset: str = "mirror",
    zero_onset: str = "first-frame",
    sheet: str | None = None,
    overwrite: bool = False,
    strict: bool = False,
) -> ImportReport:
    """Write the feature set of ``dataset`` to ``out`` and return what was done.

    ``snippet_length`` comes from the argument, else the feature files' ``snippet_length``
    scalar, else the dataset default; ``stride`` likewise, defaulting to the snippet length.
    ``strict``: annotated videos without feature files are an error instead of being left out.
    Raises :class:`DatasetImportError` (a ``ValueError``) with a one-line message on bad input.
    """
    if dataset not in DATASETS:
        raise DatasetImportError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    spec = DATASETS[dataset]
    if annotation_format not in ANNOTATION_FORMATS:
        raise DatasetImportError(f"unknown annotation format {annotation_format!r}; expected one of {', '.join(ANNOTATION_FORMATS)}")
    fps = spec.fps if fps is None else float(fps)
    if not fps > 0:
        raise DatasetImportError(f"--fps must be positive, got {fps}")
    if first_frame not in (0, 1):
        raise DatasetImportError(f"--first-frame must be 0 or 1, got {first_frame}")
    for value, what in ((snippet_length, "--snippet"), (stride, "--stride")):
        if value is not None and value <= 0:
            raise DatasetImportError(f"{what} must be positive, got {value}")
    rules = FrameRules(first_frame, parse_unknown_offset(unknown_offset), fps, parse_zero_onset(zero_onset))
    features_dir, out = Path(features_dir).expanduser(), Path(out).expanduser()
    _check_paths(features_dir, out)
    if (out / "videos.csv").exists() and not overwrite:
        raise DatasetImportError(f"{out}: already holds a feature set (videos.csv); pass --overwrite to replace it")
    inputs = [a if isinstance(a, AnnotationInput) else AnnotationInput.parse(a) for a in annotations]
    if not inputs:
        raise DatasetImportError("no annotation file given")

    report = ImportReport(dataset=spec.name)
    raws = _read_annotations(spec, inputs, annotation_format, sheet, report)
    expressions = _deduplicate([e for raw in raws if (e := normalize(raw, rules, report)) is not None], report)
    flow_dir = Path(flow_features_dir).expanduser() if flow_features_dir is not None else None
    videos = _feature_videos(spec, features_dir, report, flow_dir)
    _set_lengths(spec, videos, raws, features_dir, frames_dir, report)
    snippet_length, stride = _snippet_settings(spec, videos, snippet_length, stride)
    _check_snippets(videos, snippet_length, stride)
    intervals = _match(videos, expressions, report)
    _report_missing(spec, videos, report, strict)
    if not intervals:
        report.warnings.append("no annotation row matched a feature video: the set has no ground truth to train or score on")

    report.settings = {
        "out": str(out),
        "snippet_length": snippet_length,
        "stride": stride,
        "fps": _int_if_whole(fps),
        "first_frame": first_frame,
        "unknown_offset": rules.unknown_offset,
        "zero_onset": rules.zero_onset,
        "strict": strict,
        "annotation_format": annotation_format,
        "annotations": [f"{a.type}={a.path}" if a.type else str(a.path) for a in inputs],
        "features": str(features_dir),
        "flow_features": None if flow_dir is None else str(flow_dir),
        "frames": None if frames_dir is None else str(frames_dir),
    }
    _write(out, videos, intervals, fps, (snippet_length, stride), overwrite, report)
    load_feature_set(out, snippet_length, stride, check_values=False)
    return report


def _int_if_whole(number: float) -> int | float:
    """``number`` as an int when it is whole (30.0 -> 30, so the CSV says ``30``), else a float."""
    return int(number) if float(number).is_integer() else float(number)


def _check_paths(features_dir: Path, out: Path) -> None:
    feats, root = features_dir.resolve(), out.resolve()
    if root == feats or feats in root.parents:
        raise DatasetImportError(f"--out {out} lies inside --features {features_dir}; choose a folder outside it")
    if feats == root / "features" or (root / "features") in feats.parents:
        raise DatasetImportError(f"--features {features_dir} lies inside {out / 'features'}, which the import writes")


def _read_annotations(
    spec: DatasetSpec, inputs: Sequence[AnnotationInput], annotation_format: str, sheet: str | None, report: ImportReport
) -> list[RawExpression]:
    raws: list[RawExpression] = []
    for item in inputs:
        if item.type is not None and (annotation_format != "official" or not spec.typed_inputs):
            raise DatasetImportError(f"{item.type}={item.path}: a type prefix is only accepted for casme3 official annotations")
        if annotation_format == "lgsnet":
            raws += lgsnet_csv.read_annotations(item.path, report, spec.parse_video_name)
        elif spec.typed_inputs:
            raws += spec.read_official(item.path, report, sheet=sheet, default_type=item.type)
        else:
            raws += spec.read_official(item.path, report, sheet=sheet)
    return raws


def _deduplicate(expressions: list[Expression], report: ImportReport) -> list[Expression]:
    seen: set[tuple] = set()
    unique = []
    for e in expressions:
        identity = (e.key, e.onset, e.offset, e.type)
        if identity in seen:
            report.drop("duplicate of an earlier row (same video, interval and type)", e.source)
            continue
        seen.add(identity)
        unique.append(e)
    return unique


def _feature_videos(spec: DatasetSpec, features_dir: Path, report: ImportReport, flow_dir: Path | None = None) -> list[_Video]:
    sources, ignored = features.discover(features_dir, flow_dir)
    split = features.stream_folders(features_dir, flow_dir)
    if split is not None:
        report.notes.append(f"rgb features from {split[0]}, flow features from {split[1]} (paired by file name)")
    report.ignored_files += ignored
    videos: dict[str, _Video] = {}
    for name, source in sources.items():
        parsed = spec.parse_video_name(name)
        if parsed is None:
            report.ignored_files.append(source.describe())
            continue
        for value, what in ((parsed.video, "video"), (parsed.subject, "subject")):
            if (problem := id_problem(value)) is not None:
                raise DatasetImportError(
                    f"{source.describe()}: {what} id {value!r} {problem}; ids may hold only letters, digits, '.', '_' "
                    "and '-' and start with a letter or digit (they name folders, files and CSV cells): rename the file"
                )
        if parsed.key in videos:
            raise DatasetImportError(
                f"{source.describe()}: same {spec.title} video as {videos[parsed.key].source.describe()} ({parsed.key})"
            )
        videos[parsed.key] = _Video(parsed, source, features.inspect(source))
    if not videos:
        found = list(sources)
        seen = (f"; found {len(found)} feature name(s), none a {spec.title} video: "
                + ", ".join(found[:NAMES_SHOWN]) + (", ..." if len(found) > NAMES_SHOWN else "")) if found else ""
        raise DatasetImportError(
            f"{features_dir}: no {spec.title} feature files found (expected <video>-rgb.npz/-flow.npz, "
            f"<video>-rgb.npy/-flow.npy or <video>.npz with rgb and flow, <video> named like {spec.name_pattern}){seen}"
        )
    for entry in videos.values():
        if entry.info.trimmed:
            report.video_repairs["rgb and flow differ by one snippet: the longer trimmed"] += 1
    return sorted(videos.values(), key=lambda v: (natural_key(v.name.subject), natural_key(v.name.video)))


def _set_lengths(
    spec: DatasetSpec,
    videos: Sequence[_Video],
    raws: Sequence[RawExpression],
    features_dir: Path,
    frames_dir: str | Path | None,
    report: ImportReport,
) -> None:
    """num_frames of each video: frames folder, else the feature files' frame_cnt, else the
    videos.csv of an extracted feature set, else the annotation's frame_num."""
    counted = features.count_frames(Path(frames_dir), spec.parse_video_name) if frames_dir is not None else {}
    listed = features.layout_frame_counts(features_dir, spec.parse_video_name)
    hints: dict[str, int] = {}
    for raw in raws:
        if raw.frames_hint is not None:
            hints.setdefault(raw.key, raw.frames_hint)
    missing = []
    for entry in videos:
        key = entry.name.key
        for value, origin in (
            (counted.get(key, (None,))[0], "frames folder"),
            (entry.info.frame_count, "feature files (frame_cnt)"),
            (listed.get(key), "videos.csv of the features"),
            (hints.get(key), "annotation frame_num"),
        ):
            if value is not None and value > 0:
                entry.num_frames = value
                report.length_sources[origin] += 1
                break
        else:
            missing.append(entry.name.video)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        where = f"no frame folder under {frames_dir} and " if frames_dir is not None else ""
        raise DatasetImportError(
            f"no frame count for {len(missing)} video(s) ({shown}): {where}no frame_cnt in the feature files; "
            "pass --frames DIR (one folder of frame images per video)"
        )


def _snippet_settings(
    spec: DatasetSpec, videos: Sequence[_Video], snippet_length: int | None, stride: int | None
) -> tuple[int, int]:
    """Resolve snippet length and stride: argument > feature files > dataset default."""

    def stored(setting: str, flag: str, given: int | None) -> int | None:
        values: dict[int, str] = {}  # value -> first file storing it
        for entry in videos:
            value = getattr(entry.info, setting)
            if value is not None:
                values.setdefault(value, entry.source.describe())
        if len(values) > 1:
            (a, file_a), (b, file_b) = list(values.items())[:2]
            raise DatasetImportError(f"{file_b}: stores {setting} {b} but {file_a} stores {a}")
        if given is not None and values and given not in values:
            value, file = next(iter(values.items()))
            raise DatasetImportError(f"{file}: stores {setting} {value} but {flag} {given} was given")
        return next(iter(values), None)

    file_length = stored("snippet_length", "--snippet", snippet_length)
    file_stride = stored("stride", "--stride", stride)
    length = snippet_length or file_length or spec.snippet_length
    return length, stride or file_stride or length


def _check_snippets(videos: Sequence[_Video], snippet_length: int, stride: int) -> None:
    """Every video's snippet count fits its length (+-1) and all share the feature widths."""
    widths = (videos[0].info.rgb_width, videos[0].info.flow_width)
    wrong = []
    for entry in videos:
        if (entry.info.rgb_width, entry.info.flow_width) != widths:
            raise DatasetImportError(
                f"{entry.source.describe()}: feature widths rgb={entry.info.rgb_width}, flow={entry.info.flow_width} "
                f"differ from {videos[0].source.describe()}'s {widths}"
            )
        expected = expected_snippets(entry.num_frames, snippet_length, stride)
        if entry.info.num_snippets == 0 or abs(entry.info.num_snippets - expected) > SNIPPET_SLACK:
            wrong.append((entry, expected))
    if wrong:
        entry, expected = wrong[0]
        more = f" ({len(wrong) - 1} more videos do not fit either)" if len(wrong) > 1 else ""
        raise DatasetImportError(
            f"{entry.source.describe()}: {entry.info.num_snippets} snippets, but {entry.num_frames} frames with snippet "
            f"length {snippet_length} and stride {stride} give {expected} (+-{SNIPPET_SLACK} allowed){more}; "
            "set --snippet and --stride to the extractor's (the LGSNet release: --snippet 8 --stride 2)"
        )


def _match(videos: Sequence[_Video], expressions: Sequence[Expression], report: ImportReport) -> list[tuple[_Video, Expression]]:
    """Pair expressions with their videos, fitted into the video's frames; report the rest."""
    by_key = {v.name.key: v for v in videos}
    matched: list[tuple[_Video, Expression]] = []
    for e in expressions:
        entry = by_key.get(e.key)
        if entry is None:
            report.missing_features[e.key] = report.missing_features.get(e.key, 0) + 1
            continue
        fitted = _fit(e, entry.num_frames, report)
        if fitted is not None:
            matched.append((entry, fitted))
    report.missing_features = dict(sorted(report.missing_features.items(), key=lambda kv: natural_key(kv[0])))
    annotated = {entry.name.key for entry, _ in matched}
    report.unannotated_videos = [v.name.video for v in videos if v.name.key not in annotated]
    order = {v.name.key: i for i, v in enumerate(videos)}
    matched.sort(key=lambda pair: (order[pair[0].name.key], pair[1].onset, pair[1].offset, pair[1].type))
    return matched


def _report_missing(spec: DatasetSpec, videos: Sequence[_Video], report: ImportReport, strict: bool) -> None:
    """Name the annotated subjects with no feature file at all; with ``strict``, refuse any
    annotated video without features."""
    with_features = {v.name.subject for v in videos}
    subjects: dict[str, None] = {}
    for key in report.missing_features:
        parsed = spec.parse_video_name(key)
        if parsed is not None and parsed.subject not in with_features:
            subjects[parsed.subject] = None
    report.missing_subjects = sorted(subjects, key=natural_key)
    if strict and report.missing_features:
        shown = ", ".join(f"{k} ({n} row{'s' if n != 1 else ''})" for k, n in list(report.missing_features.items())[:NAMES_SHOWN])
        more = f" and {len(report.missing_features) - NAMES_SHOWN} more" if len(report.missing_features) > NAMES_SHOWN else ""
        whole = f"; whole subjects without features: {', '.join(report.missing_subjects)}" if report.missing_subjects else ""
        raise DatasetImportError(
            f"--strict: {len(report.missing_features)} annotated video(s) have no feature file: {shown}{more}{whole} "
            "(without --strict they are left out and listed in the summary)"
        )


def _fit(e: Expression, num_frames: int, report: ImportReport) -> Expression | None:
    """Clip an interval that runs past the video's end; drop one that starts after it."""
    last = num_frames - 1
    if e.onset > last:
        report.drop("interval starts after the video's last frame", e.source, f"onset {e.onset}, last frame {last}")
        return None
    if e.offset <= last:
        return e
    report.repair("interval runs past the video's last frame: offset clipped to it", e.source, f"offset {e.offset}, last frame {last}")
    apex = e.apex
    if apex is not None and apex > last:
        report.repair("apex outside its interval: apex cleared", e.source)
        apex = None
    return Expression(e.source, e.key, e.onset, last, e.type, apex)


def _write(
    out: Path, videos: Sequence[_Video], intervals: Sequence[tuple[_Video, Expression]], fps: float, snippets: tuple[int, int],
    overwrite: bool, report: ImportReport,
) -> None:
    """Write the layout; every feature file records ``snippets`` (length, stride) and the fps."""
    video_rows = [
        {"video": v.name.video, "subject": v.name.subject, "num_frames": v.num_frames, "fps": _int_if_whole(fps)} for v in videos
    ]
    annotation_rows = [
        {"video": v.name.video, "subject": v.name.subject, "onset": e.onset, "apex": e.apex, "offset": e.offset, "type": e.type}
        for v, e in intervals
    ]
    report.videos = len(videos)
    report.subjects = len({v.name.subject for v in videos})
    for _, e in intervals:
        report.type_counts[e.type] += 1
    if overwrite:
        (out / "videos.csv").unlink(missing_ok=True)  # an interrupted rewrite leaves no half-valid set
    write_feature_set(out, video_rows, annotation_rows, _LazyFeatures(videos), *snippets)
    keep = {f"{v.name.video}.npz" for v in videos}
    stale = [p for p in sorted((out / "features").glob("*.npz")) if p.name not in keep]
    for path in stale:
        path.unlink()
    if stale:
        report.notes.append(f"removed {len(stale)} feature file(s) of an earlier import from {out / 'features'}")
    io.write_json(out / REPORT_FILE, report.to_dict())
