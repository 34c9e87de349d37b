"""Feature extraction from raw face videos: TV-L1 optical flow and a two-stream I3D, into the feature-set layout.

Modules: :mod:`~pwes.extract.video` (decoding videos and frame folders, cropping),
:mod:`~pwes.extract.flow` (TV-L1 between adjacent frames), :mod:`~pwes.extract.i3d` (the network and
checkpoint loading), :mod:`~pwes.extract.pipeline` (snippets, batching, writing); the command line is
``python -m pwes.extract``. Nothing is imported here, so flow worker processes start without torch.
"""
