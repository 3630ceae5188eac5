"""Evaluation: the benchmarks' protocols (`protocols`) and the common 3DPW-format test split every
model of the collection is scored on (`pw3d_split`).

The protocols are re-exported here: ``from hmrlab import evaluation; evaluation.h36m_protocols(...)``.
`hmrlab.metrics` defines the errors themselves; `hmrlab.complexity` counts parameters and MACs.
"""

from hmrlab.evaluation.protocols import (
    H36M_ACTIONS,
    H36M_TO_LSP14,
    LSP14_HIPS,
    LSP14_JOINT_NAMES,
    MM,
    TOTAL_ROWS,
    action_name,
    h36m_protocols,
    mpi3dhp_protocol,
    pw3d_joint_protocol,
    pw3d_protocol,
)

__all__ = [
    "H36M_ACTIONS", "H36M_TO_LSP14", "LSP14_HIPS", "LSP14_JOINT_NAMES", "MM", "TOTAL_ROWS", "action_name", "h36m_protocols", "mpi3dhp_protocol", "pw3d_joint_protocol", "pw3d_protocol",
]
