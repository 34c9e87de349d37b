"""What a sweep's report shows: the metrics.json keys of each table, their labels, the notes
under them, and the headline figures whose row-to-row differences are checked against the
spread (one place, read by :mod:`.stats` and :mod:`.render`)."""

from __future__ import annotations

# (column label, metrics.json key), grouped by operating point; † = tuned on the test folds.
COLUMNS = (
    ("F1(0.5)", "f1_me_0.5"),
    ("F1(1.0)", "f1_me_1.0"),
    ("all: REC", "recall"),
    ("all: PRE", "precision"),
    ("all: F1", "f1"),
    ("calibrated: REC", "calibrated_recall"),
    ("calibrated: PRE", "calibrated_precision"),
    ("calibrated: F1", "calibrated_f1"),
    ("calibrated: ME F1", "calibrated_me_f1"),
    ("best-on-test†: F1", "f1_p"),
    ("best-on-test†: F1(p)", "f1_me_p"),
)
# Pseudo-label and attention diagnostics (pwes.callbacks.diagnostics): a second table.
DIAG_COLUMNS = (
    ("ME precision", "diag_precision_me"),
    ("ME recall", "diag_recall_me"),
    ("MaE precision", "diag_precision_mae"),
    ("MaE recall", "diag_recall_mae"),
    ("bg purity", "diag_bg_purity"),
    ("fg coverage", "diag_coverage_fg"),
    ("bg coverage", "diag_coverage_bg"),
    ("attention AUC", "diag_attention_auc"),
)
DIAG_NOTE = (
    "Pseudo labels and attention on the training videos against their annotated intervals (ground "
    "truth for logging only): the snippet-loss targets' precision/recall per class, the share of "
    "pseudo background outside every interval, the share of each video labelled, the attention's "
    "snippet AUC; each fold's mean over its last steps, then the mean over folds."
)
# Validation figures (evaluation.validation_subjects > 0): point hits on held-out training
# subjects, what `pwes.select` chooses by; a third table.
VAL_COLUMNS = (
    ("val: REC", "val_recall"),
    ("val: PRE", "val_precision"),
    ("val: F1", "val_f1"),
    ("val: ME F1", "val_me_f1"),
    ("val: MaE F1", "val_mae_f1"),
    ("val, all proposals: F1", "val_all_f1"),
)
VAL_NOTE = (
    "Validation: each fold's held-out training subjects (never the test subject), scored with the "
    "run's calibration rule (point hits under point supervision) at the fold's calibrated threshold; "
    "counts pooled over folds. The figure to choose settings by (pwes.select); the test columns above "
    "are reported, not chosen on."
)
# The figures whose row-to-row differences are checked against the spread.
HEADLINE = ("f1", "calibrated_f1", "f1_p", "f1_me_0.5")
NOTE = (
    "all: every proposal. calibrated: each fold's score threshold chosen on its training videos' "
    "point labels, or their intervals under model.supervision=full (deployable; the threshold "
    "pwes.spot uses). best-on-test†: the threshold with "
    "the best pooled F1, one threshold for all folds, tuned on the test folds (not deployable, and not "
    "an upper bound of calibrated, whose thresholds are per fold; the paper's F1(p) is its ME F1)."
)
