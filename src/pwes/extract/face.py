"""The face region for ``--face auto``: one fixed, square box per video from a face detector.

The detector (dlib's HOG frontal-face detector, from the optional ``pwes[face]`` extra) runs on an
even sample of frames; the largest face of each frame is kept, and the box is the median of those
detections' edges (robust to a few misses or false hits), padded by ``margin`` times its size on
every side, made square around its centre and moved (not cut) to lie inside the frame. It is used
for every frame: a box that followed the face frame by frame would add its own motion to the flow.

Why dlib's HOG detector: it ships inside the wheel (no model file to download), is accurate on the
frontal, well-lit faces of spotting datasets, and ``dlib-bin`` is a 4 MB binary wheel (Boost
licence) with no dependency, so it cannot disturb the pinned torch. The alternatives checked are in
docs/extraction.md (MTCNN in facenet-pytorch pins torch<2.3 and numpy<2; mediapipe 1.x ships no face
model and requires the non-headless OpenCV; this OpenCV 5 wheel ships no Haar cascade files).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

FACE_MODES = ("none", "auto")
DEFAULT_MARGIN = 0.25  # ours: a HOG box spans brows to lips; a quarter of its side each way takes in forehead and chin
DEFAULT_SAMPLES = 25  # frames the detector looks at, evenly spread over the video
MIN_FOUND = 0.5  # a face must be found in at least this share of the sampled frames, else the video fails
WARN_FOUND = 0.8  # below this share (but above MIN_FOUND) the box is used with a warning
DETECT_SHORT_SIDE = 480  # frames are scaled to this shorter side for detection: faces down to ~1/6 of it are found

Box = tuple[int, int, int, int]  # x, y, width, height in source pixels
Detection = tuple[float, float, float, float]  # x, y, width, height in source pixels
Detector = Callable[[np.ndarray], list[Detection]]


class FaceError(ValueError):
    """No usable face region; the message names the video."""


@dataclass(frozen=True)
class FaceRegion:
    """The box chosen for a video and how it was found."""

    box: Box
    found: int  # sampled frames with a face
    sampled: int  # frames the detector looked at
    warnings: tuple[str, ...] = ()


def load_detector() -> Detector:
    """dlib's frontal-face detector as a function of an RGB frame; a one-line error without dlib."""
    try:
        import dlib
    except ImportError:
        raise FaceError("--face auto needs dlib's face detector: pip install 'pwes[face]' (installs dlib-bin), or pass --crop-box") from None
    detector = dlib.get_frontal_face_detector()

    def detect(frame: np.ndarray) -> list[Detection]:
        scale = DETECT_SHORT_SIDE / min(frame.shape[:2])
        size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
        image = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        return [(r.left() / scale, r.top() / scale, r.width() / scale, r.height() / scale) for r in detector(np.ascontiguousarray(image), 0)]

    return detect


def sample_indices(num_frames: int, samples: int) -> list[int]:
    """``samples`` frame indices spread evenly over ``0 .. num_frames - 1`` (first and last included)."""
    if num_frames < 1 or samples < 1:
        return []
    return sorted(set(np.linspace(0, num_frames - 1, min(samples, num_frames)).round().astype(int).tolist()))


def fixed_box(detections: Sequence[Sequence[Detection]], width: int, height: int, margin: float = DEFAULT_MARGIN) -> Box | None:
    """One square box from per-frame detections (None when no frame has a face).

    Per frame the largest detection counts; the median left, top, right and bottom edges give the
    face; its longer side times ``1 + 2 * margin`` is the square's side (at most the frame's shorter
    side), centred on the face and shifted to lie inside the ``width`` x ``height`` frame.
    """
    largest = [max(frame, key=lambda d: d[2] * d[3]) for frame in detections if frame]
    if not largest:
        return None
    edges = np.array([(x, y, x + w, y + h) for x, y, w, h in largest], dtype=np.float64)
    left, top, right, bottom = np.median(edges, axis=0)
    side = min(round(max(right - left, bottom - top) * (1 + 2 * margin)), width, height)
    x = round((left + right) / 2 - side / 2)
    y = round((top + bottom) / 2 - side / 2)
    x, y = min(max(x, 0), width - side), min(max(y, 0), height - side)
    return int(x), int(y), int(side), int(side)


def find_face(
    name: str,
    frames: Sequence[np.ndarray],
    detect: Detector,
    margin: float = DEFAULT_MARGIN,
    min_found: float = MIN_FOUND,
) -> FaceRegion:
    """Detect in ``frames`` (RGB, one size) and choose the box; :class:`FaceError` naming ``name``
    when faces are found in fewer than ``min_found`` of them."""
    if not frames:
        raise FaceError(f"{name}: no frame to look for a face in")
    height, width = frames[0].shape[:2]
    detections = [detect(frame) for frame in frames]
    found = sum(bool(d) for d in detections)
    fix = "pass --crop-box X,Y,W,H (see docs/extraction.md)"
    if found == 0:
        raise FaceError(f"{name}: no face found in any of {len(frames)} sampled frames (frontal faces of at least 1/6 of the frame's shorter side are found); {fix}")
    if found < min_found * len(frames):
        raise FaceError(f"{name}: a face found in only {found} of {len(frames)} sampled frames, too few for a reliable box; {fix}")
    box = fixed_box(detections, width, height, margin)
    assert box is not None
    warnings = []
    if found < WARN_FOUND * len(frames):
        warnings.append(f"no face found in {len(frames) - found} of {len(frames)} sampled frames; the box comes from the other {found}")
    several = sum(len(d) > 1 for d in detections)
    if several:
        warnings.append(f"more than one face in {several} of {len(frames)} sampled frames; the largest was used")
    x, y, side, _ = box
    outside = sum(
        1 for d in detections if d and _beyond(max(d, key=lambda b: b[2] * b[3]), (x, y, side, side))
    )
    if outside:
        warnings.append(f"the face reaches beyond the box in {outside} of {found} sampled frames (the head moves); check the box picture")
    return FaceRegion(box, found, len(frames), tuple(warnings))


def _beyond(face: Detection, box: Box) -> bool:
    fx, fy, fw, fh = face
    bx, by, bw, bh = box
    return fx < bx or fy < by or fx + fw > bx + bw or fy + fh > by + bh


def draw_box(frame: np.ndarray, box: Box | None, seen: Box, label: str) -> np.ndarray:
    """A BGR picture of ``frame`` (RGB) with the crop box (green), the part I3D sees (yellow) and a
    label, enlarged to at least 360 px high so the lines and text stay readable."""
    scale = max(1, -(-360 // frame.shape[0]))
    image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    if scale > 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    for region, colour in ((seen, (0, 220, 255)), (box, (0, 200, 0))):
        if region is not None:
            x, y, w, h = (v * scale for v in region)
            cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), colour, 2)
    (width, height), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    bottom = image.shape[0] - 6
    cv2.rectangle(image, (2, bottom - height - 4), (10 + width, bottom + base), (0, 0, 0), -1)  # a dark strip keeps it legible
    cv2.putText(image, label, (6, bottom), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return image
