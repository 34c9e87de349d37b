"""Training mechanisms that switch on after a milestone, as Lightning callbacks: pseudo labels
(MPLG, PPLM, Gaussian, and the oracle upper bound) and DFCL, each contributing through
``PWESModule.contribute``; and, logged only, the diagnostics and the gradient shares."""

from pwes.callbacks.base import MilestoneCallback, PseudoLabelCallback
from pwes.callbacks.dfcl import DFCLCallback
from pwes.callbacks.gaussian import GaussianCallback
from pwes.callbacks.mplg import MPLGCallback
from pwes.callbacks.oracle import OracleCallback
from pwes.callbacks.pplm import PPLMCallback

__all__ = ["DFCLCallback", "GaussianCallback", "MPLGCallback", "MilestoneCallback", "OracleCallback", "PPLMCallback", "PseudoLabelCallback"]
