"""The PWES model (paper sections 3.2-3.5): network, MPLG and PPLM pseudo labels, DFCL with its
memory bank, snippet targets, the losses and the LightningModule. The mechanisms that switch on
after pretraining run as callbacks (``pwes.callbacks``) on top of these algorithms."""

from pwes.model.dfcl import DFCLConfig, RegionCounts, RegionVectors, info_nce, sample_region_vectors
from pwes.model.losses import LossConfig
from pwes.model.memory_bank import RegionMemoryBank
from pwes.model.module import LossReport, PWESModule, StepContext, VideoPrediction
from pwes.model.mplg import MPLG_VARIANTS, MPLGConfig, PseudoLabels, generate_mplg
from pwes.model.network import NetworkConfig, NetworkOutput, PWESNetwork
from pwes.model.pplm import PPLMConfig, generate_pplm
from pwes.model.targets import SnippetTargets

__all__ = [
    "DFCLConfig",
    "LossConfig",
    "LossReport",
    "MPLGConfig",
    "MPLG_VARIANTS",
    "NetworkConfig",
    "NetworkOutput",
    "PPLMConfig",
    "PWESModule",
    "PWESNetwork",
    "PseudoLabels",
    "RegionCounts",
    "RegionMemoryBank",
    "RegionVectors",
    "SnippetTargets",
    "StepContext",
    "VideoPrediction",
    "generate_mplg",
    "generate_pplm",
    "info_nce",
    "sample_region_vectors",
]
