"""Data layer: the feature-set layout, point labels, the synthetic benchmark and the datamodule."""
