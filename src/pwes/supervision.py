"""The supervision modes a run trains under (``model.supervision``), in one place: the model
(pwes.model.module) and the data module (pwes.data.datamodule) both check against this list.

point: video labels + point labels (PWES); video: video labels only (Table I baseline);
full: also the whole annotated intervals as snippet labels (the fully supervised reference)."""

SUPERVISIONS = ("point", "video", "full")
