"""Training mechanisms that switch on after a milestone, as Lightning callbacks: pseudo labels
(MPLG, PPLM, Gaussian) and DFCL. Each contributes through ``PWESModule.contribute``."""

from pwes.callbacks.base import MilestoneCallback, PseudoLabelCallback
from pwes.callbacks.dfcl import DFCLCallback
from pwes.callbacks.gaussian import GaussianCallback
from pwes.callbacks.mplg import MPLGCallback
from pwes.callbacks.pplm import PPLMCallback

__all__ = ["DFCLCallback", "GaussianCallback", "MPLGCallback", "MilestoneCallback", "PPLMCallback", "PseudoLabelCallback"]
