"""Point labels: reproducible draws inside the interval, apex mode, frame -> snippet mapping."""

from __future__ import annotations

import numpy as np
import pytest

from pwes.data.layout import Interval
from pwes.data.points import PointLabel, frame_to_snippet, sample_points, snippet_intervals, snippet_points, video_label

INTERVALS = [Interval("v", "s", 10, 20, "ME", 12), Interval("v", "s", 100, 180, "MaE", None)]


def test_random_points_inside_and_reproducible() -> None:
    first = sample_points("v", INTERVALS, "random", seed=3)
    again = sample_points("v", INTERVALS, "random", seed=3)
    assert first == again
    assert 10 <= first[0].frame <= 20 and 100 <= first[1].frame <= 180
    assert [p.label for p in first] == [0, 1]
    draws = {tuple(p.frame for p in sample_points("v", INTERVALS, "random", seed=s)) for s in range(20)}
    assert len(draws) > 10  # the seed matters


def test_points_do_not_depend_on_other_videos() -> None:
    # the draw for a video depends only on (seed, video id)
    a = sample_points("v", INTERVALS, "random", seed=0)
    sample_points("w", INTERVALS, "random", seed=0)
    assert sample_points("v", INTERVALS, "random", seed=0) == a


def test_apex_mode_and_fallback() -> None:
    points = sample_points("v", INTERVALS, "apex")
    assert points[0].frame == 12 and not points[0].apex_fallback
    assert points[1].frame == 140 and points[1].apex_fallback


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="points.mode"):
        sample_points("v", INTERVALS, "middle")


def test_frame_to_snippet_non_overlapping() -> None:
    assert [frame_to_snippet(f, 8, 8, 10) for f in (0, 7, 8, 15, 16)] == [0, 0, 1, 1, 2]
    assert frame_to_snippet(500, 8, 8, 10) == 9  # clipped to the last snippet


def test_frame_to_snippet_overlapping_picks_nearest_centre() -> None:
    # length 8, stride 2: snippet t covers [2t, 2t+8), centre 2t+3.5; frame 10 -> t=3 (centre 9.5) or 4 (11.5)
    assert frame_to_snippet(10, 8, 2, 100) == 3
    assert frame_to_snippet(0, 8, 2, 100) == 0


def test_snippet_points_and_video_label() -> None:
    points = sample_points("v", INTERVALS, "apex")
    grid = snippet_points(points, 30, 8, 8)
    assert grid.shape == (30, 2)
    assert grid[1, 0] == 1 and grid[17, 1] == 1 and grid.sum() == 2
    np.testing.assert_array_equal(video_label(INTERVALS[:1]), [1, 0])
    np.testing.assert_array_equal(video_label([]), [0, 0])


def test_an_me_and_an_mae_point_in_one_snippet_set_both_columns() -> None:
    grid = snippet_points([PointLabel(10, 0), PointLabel(12, 1)], 4, 8, 8)
    assert grid[1].tolist() == [1.0, 1.0] and grid.sum() == 2


def test_snippet_intervals_cover_the_whole_interval() -> None:
    # snippet t covers frames [8t, 8t+8), centre 8t+3.5: ME [10, 20] -> centres 11.5, 19.5 (t=1, 2);
    # a 2-frame MaE [41, 42] holds no centre: the snippet nearest its middle (t=5) counts
    intervals = [Interval("v", "s", 10, 20, "ME", 12), Interval("v", "s", 41, 42, "MaE", None)]
    grid = snippet_intervals(intervals, 8, 8, 8)
    assert grid[:, 0].tolist() == [0, 1, 1, 0, 0, 0, 0, 0]
    assert grid[:, 1].tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
