"""Importers: the real datasets' annotation files and existing feature files into the feature-set
layout of :mod:`pwes.data.layout`.

One dataset per module (:mod:`.casme2`, :mod:`.samm`, :mod:`.casme3`, plus the LGSNet CSV in
:mod:`.lgsnet_csv`) reads annotations into :class:`~.common.RawExpression` rows keyed by video and
parses the dataset's video names; :mod:`.tables` reads workbook sheets and CSV files,
:mod:`.features` feature files and frame folders, :mod:`.frames` holds the frame-number rules,
:mod:`.report` the import report, :mod:`.registry` the registry, and :mod:`.pipeline` puts them
together in :func:`import_dataset`. ``docs/datasets.md`` has the rules.
"""

from pwes.datasets.common import DatasetImportError
from pwes.datasets.registry import ANNOTATION_FORMATS, DATASETS, AnnotationInput, DatasetSpec
from pwes.datasets.frames import UNKNOWN_OFFSET_RULES, ZERO_ONSET_RULES
from pwes.datasets.pipeline import REPORT_FILE, import_dataset
from pwes.datasets.report import ImportReport

__all__ = [
    "ANNOTATION_FORMATS",
    "DATASETS",
    "REPORT_FILE",
    "UNKNOWN_OFFSET_RULES",
    "ZERO_ONSET_RULES",
    "AnnotationInput",
    "DatasetImportError",
    "DatasetSpec",
    "ImportReport",
    "import_dataset",
]
