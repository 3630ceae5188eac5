"""Full models, one file per paper.

- `hmrlab.models.lifd_hmr`: LIFD-HMR (arXiv 2510.18267), video mesh recovery: the LIFD-Extractor
  (wavelet split of backbone features into an attention branch and a convolution branch) and its
  ablation without the split, LDMP (pose and mesh branches with low-dimensional attention,
  `hmrlab.attention`, runnable in parallel), and the full model `LIFDHMR` (ResNet-50 -> extractor ->
  MixSTE -> LDMP -> 431-vertex mesh -> upsampled full mesh -> joints).
- `hmrlab.models.keypoint_hmr` (backbone: `hmrlab.models.mgfenet`): the keypoints-guided lightweight HMR (Chen & Wang):
  MGFENet, 3DKEM (mapping A, GAU, SimCC), β MLP, IK, body model, RLE and SMPL losses, 2D pretraining.
- `hmrlab.models.bidrn`: BiDRN whole-body (SMPL-X) mesh recovery: the Hand4Whole pipeline with
  binarized ResNets (`hmrlab.binary`), its full-precision twin, and `hand4whole` for the Params/OPs
  comparison.
"""
