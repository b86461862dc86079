"""sdeml.flows: continuous normalizing flows (FFJORD, RNODE) and flow matching / rectified flow."""

from ._cnf import CNF, CNF_DIVERGENCES, CNF_PROBES, CNFOutput, cnf_loss, standard_normal_logp
from ._flow_matching import (
    COUPLINGS,
    cfm_loss,
    conditional_path,
    couple,
    ot_permutation,
    reflow_pairs,
    sample_flow,
    straightness,
)

__all__ = [
    "CNF",
    "COUPLINGS",
    "CNF_DIVERGENCES",
    "CNF_PROBES",
    "CNFOutput",
    "cfm_loss",
    "cnf_loss",
    "conditional_path",
    "couple",
    "ot_permutation",
    "reflow_pairs",
    "sample_flow",
    "standard_normal_logp",
    "straightness",
]
