"""Feature extraction from raw face videos: TV-L1 optical flow and a two-stream I3D, into the feature-set layout.

Modules: :mod:`~pwes.extract.video` (decoding videos and frame folders, cropping),
:mod:`~pwes.extract.face` (the ``--face auto`` detector and fixed box), :mod:`~pwes.extract.region`
(each video's crop region and its record), :mod:`~pwes.extract.flow` (TV-L1 between adjacent
frames, in worker processes), :mod:`~pwes.extract.i3d` (the network and checkpoint loading),
:mod:`~pwes.extract.pipeline` (snippets, batching), :mod:`~pwes.extract.writer` (the feature-set
folder), :mod:`~pwes.extract.progress` (per-video progress); the command line is
``python -m pwes.extract``. Nothing is imported here, so flow worker processes start without torch.
"""
