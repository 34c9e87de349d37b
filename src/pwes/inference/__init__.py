"""Inference post-processing: snippet scores to typed frame-interval proposals (paper section 3.6)."""

from pwes.inference.maps import proposal_maps, proposals_from_prediction
from pwes.inference.proposals import Proposal, ProposalConfig, duration_labels, expression_type, generate_proposals

__all__ = ["Proposal", "ProposalConfig", "duration_labels", "expression_type", "generate_proposals", "proposal_maps", "proposals_from_prediction"]
