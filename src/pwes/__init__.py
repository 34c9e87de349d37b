"""pwes: point-level weakly-supervised expression spotting (PWES) as a Lightning + Hydra framework."""

__version__ = "0.1.0"
