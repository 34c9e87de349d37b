"""The static face: a zero-inflated shifted log-normal calibrated to mean, norm and zero share.

Most of an I3D snippet feature is the face itself; this maps a standard-normal copula draw to a
pre-activation whose ReLU (after the background noise) has the target marginal statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from pwes.synthetic.spec import SyntheticSpecError


@dataclass(frozen=True)
class FaceMap:
    """Maps a standard normal ``g`` to a pre-activation: ``exp(mu + s g) - c`` above ``z0``, linear below."""

    mu: float
    sigma: float
    z0: float

    def __call__(self, g: np.ndarray) -> np.ndarray:
        c = math.exp(self.mu + self.sigma * self.z0)
        above = np.exp(self.mu + self.sigma * np.maximum(g, self.z0)) - c
        below = self.sigma * c * (g - self.z0)  # continuous value and slope at z0: dims near 0 flicker
        return np.where(g > self.z0, above, below)


def _face_map_noiseless(mean: float, second_moment: float, zero_fraction: float) -> FaceMap:
    """The face map whose positive part has the given mean, second moment and zero share."""
    normal = NormalDist()
    z0 = normal.inv_cdf(zero_fraction)

    def moments(sigma: float) -> tuple[float, float]:  # with mu = 0
        q = lambda x: 1.0 - normal.cdf(x)  # noqa: E731
        m1 = math.exp(sigma**2 / 2) * q(z0 - sigma) - math.exp(sigma * z0) * q(z0)
        m2 = (math.exp(2 * sigma**2) * q(z0 - 2 * sigma) - 2 * math.exp(sigma * z0 + sigma**2 / 2) * q(z0 - sigma)
              + math.exp(2 * sigma * z0) * q(z0))
        return m1, m2

    def ratio(sigma: float) -> float:
        m1, m2 = moments(sigma)
        return m1**2 / m2

    target = mean**2 / second_moment
    low, high = 1e-3, 4.0
    if not ratio(high) < target < ratio(low):
        raise SyntheticSpecError(
            f"synthetic settings feature_mean={mean:g}, snippet_norm and zero_fraction={zero_fraction:g} are "
            "inconsistent: no non-negative distribution has that mean and norm"
        )
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if ratio(mid) > target else (low, mid)
    sigma = (low + high) / 2
    return FaceMap(mu=math.log(mean / moments(sigma)[0]), sigma=sigma, z0=z0)


def _erf(x: np.ndarray) -> np.ndarray:
    """Error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7): numpy has none."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def _relu_statistics(face_map: FaceMap, noise: float) -> tuple[float, float, float]:
    """Mean, second moment and zero share of ``relu(face_map(g) + n)``, g ~ N(0, 1), n ~ N(0, noise^2)."""
    g = np.linspace(-8.0, 8.0, 4001)
    weights = np.exp(-0.5 * g * g)
    weights /= weights.sum()
    b = face_map(g)
    u = b / noise
    cdf = 0.5 * (1.0 + _erf(u / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)
    m1 = b * cdf + noise * pdf
    m2 = (b * b + noise * noise) * cdf + b * noise * pdf
    return float(weights @ m1), float(weights @ m2), float(weights @ (1.0 - cdf))


def calibrate_face_map(mean: float, second_moment: float, zero_fraction: float, noise: float) -> FaceMap:
    """The face map such that ``relu(face + background noise)`` has the target statistics.

    The noiseless solution is corrected by fixed-point iteration: noise around a ReLU raises the
    mean and, where the face density rises away from zero, the share of exact zeros.
    """
    targets = np.array([mean, second_moment, zero_fraction])
    inputs = targets.copy()
    face_map = _face_map_noiseless(*inputs)
    if noise <= 0:
        return face_map
    for _ in range(30):
        achieved = np.array(_relu_statistics(face_map, noise))
        if np.all(np.abs(achieved - targets) <= 1e-4 * np.abs(targets)):
            break
        inputs = inputs + (targets - achieved)
        inputs[2] = min(max(inputs[2], 1e-4), 0.5)
        face_map = _face_map_noiseless(*inputs)
    return face_map