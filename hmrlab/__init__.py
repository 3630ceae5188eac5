"""hmrlab: small, readable reference implementations for 3D human mesh recovery and pose estimation.

The tree follows the architecture; dependencies point one way, down this list:

- `hmrlab.geometry`, `hmrlab.metrics`, `hmrlab.validation`, `hmrlab.complexity`: rotations and
  Procrustes, the errors (MPJPE, PA-MPJPE, ...), the shared input checks, parameter and MAC counts;
- `hmrlab.body`: body models (SMPL, SMPL-X; the free model shipped in `hmrlab.paths.BODY_MODELS`)
  and a from-scratch linear blend skinning;
- `hmrlab.nn`: the papers' mechanisms (wavelets, attention, temporal pyramid, backbones, MGFENet,
  keypoint template, SimCC, RLE, IK, binary layers, bit packing, RoIAlign);
- `hmrlab.models`: the papers' models, one file each (LIFD-HMR, keypoints-guided HMR, BiDRN,
  MixSTE, RTPCA), only modules and their losses;
- `hmrlab.data`: synthetic humans in the real datasets' formats, their readers, every Dataset;
- `hmrlab.evaluation`: the benchmarks' protocols and the common 3DPW-format test split;
- `hmrlab.training`: the training loop, configured runs, the tasks, the ``hmrlab`` command;
- `hmrlab.apply`: your own keypoints to a body: lifting, fitting, export (OBJ, glTF, BVH, video);
- `hmrlab.viz`: plotly and pyvista figures; `hmrlab.io`, `hmrlab.runtime`, `hmrlab.paths`: files,
  seeds and devices, where the shipped data lies.

Notebooks in ``notebooks/`` teach them one at a time.
"""

from hmrlab.runtime import describe_device, get_device, seed_everything

__version__ = "0.1.0"
__all__ = ["describe_device", "get_device", "seed_everything", "__version__"]
