"""sdeml.flows: continuous normalizing flows (FFJORD, RNODE) and flow matching / rectified flow."""

from ._cnf import CNF as CNF
from ._cnf import CNF_DIVERGENCES as CNF_DIVERGENCES
from ._cnf import CNF_PROBES as CNF_PROBES
from ._cnf import CNFOutput as CNFOutput
from ._cnf import cnf_loss as cnf_loss
from ._cnf import standard_normal_logp as standard_normal_logp
from ._flow_matching import COUPLINGS as COUPLINGS
from ._flow_matching import cfm_loss as cfm_loss
from ._flow_matching import conditional_path as conditional_path
from ._flow_matching import couple as couple
from ._flow_matching import ot_permutation as ot_permutation
from ._flow_matching import reflow_pairs as reflow_pairs
from ._flow_matching import sample_flow as sample_flow
from ._flow_matching import straightness as straightness

__all__ = [
    "CNF",
    "CNFOutput",
    "CNF_DIVERGENCES",
    "CNF_PROBES",
    "COUPLINGS",
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
