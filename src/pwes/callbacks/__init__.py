"""Training mechanisms that switch on after a milestone, as Lightning callbacks: pseudo labels
(MPLG, PPLM, Gaussian, and the oracle upper bound), DFCL, and the Table IX comparators (SF-Net,
LACP, MC-WES's consistency losses), each contributing through ``contribute`` of the callback host
protocol (:mod:`pwes.callbacks.host`, the contract ``PWESModule`` implements); and, logged only,
the diagnostics and the gradient shares."""

from pwes.callbacks.base import LossTermCallback, MilestoneCallback, PseudoLabelCallback
from pwes.callbacks.dfcl import DFCLCallback
from pwes.callbacks.gaussian import GaussianCallback
from pwes.callbacks.host import CallbackHost, HostCallback
from pwes.callbacks.lacp import LACPCallback
from pwes.callbacks.mcwes import DurationConsistencyCallback, FeatureConsistencyCallback
from pwes.callbacks.mplg import MPLGCallback
from pwes.callbacks.oracle import OracleCallback
from pwes.callbacks.pplm import PPLMCallback
from pwes.callbacks.sfnet import SFNetCallback

__all__ = [
    "CallbackHost",
    "DFCLCallback",
    "DurationConsistencyCallback",
    "FeatureConsistencyCallback",
    "GaussianCallback",
    "HostCallback",
    "LACPCallback",
    "LossTermCallback",
    "MPLGCallback",
    "MilestoneCallback",
    "OracleCallback",
    "PPLMCallback",
    "PseudoLabelCallback",
    "SFNetCallback",
]
