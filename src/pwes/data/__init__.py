"""Data layer: the feature-set layout, point labels, batches and the datamodule (the offline
importers are :mod:`pwes.datasets`, the synthetic benchmark :mod:`pwes.synthetic`)."""
