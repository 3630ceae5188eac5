"""Full models, one file per paper: only `torch.nn.Module`s and their losses (the mechanisms they are
built from are in `hmrlab.nn`; training them is `hmrlab.training`).

- `lifd_hmr`: LIFD-HMR ("Latent-Info and Low-Dimensional Learning for Human Mesh Recovery and Parallel
  Optimization", arXiv 2510.18267), video mesh recovery: the LIFD-Extractor (wavelet split of
  backbone features into an attention branch and a convolution branch) and its ablation without the
  split, LDMP (pose and mesh branches with low-dimensional attention, runnable in parallel), and the
  full model `LIFDHMR` (ResNet -> extractor -> MixSTE -> LDMP -> 431-vertex mesh -> upsampled full
  mesh -> joints).
- `keypoint_hmr`: the keypoints-guided lightweight HMR ("Keypoints-guided Lightweight Network for
  Single-view 3D Human Reconstruction", Chen & Wang): MGFENet, 3DKEM (mapping A, GAU, SimCC), β MLP,
  IK, body model, RLE and SMPL losses, the 2D-pretraining network.
- `bidrn`: BiDRN whole-body (SMPL-X) mesh recovery ("Binarized 3D Whole-body Human Mesh Recovery",
  Li et al.): the Hand4Whole pipeline with binarized ResNets, its full-precision twin, and
  `hand4whole` for the Params/OPs comparison.
- `mixste`: MixSTE (Zhang et al., CVPR 2022), the seq2seq 2D-to-3D lifter, with its losses, flip
  test and sequence lifting.
- `rtpca`: RTPCA (arXiv 2309.01365), MixSTE with temporal pyramids and cross-layer refinement, as the
  paper reads (`RTPCA`) and as the authors' code builds it (`RTPCAAuthors`).
- `pmce`: PMCE's CoevoBlock ("Co-Evolution of Pose and Mesh for 3D Human Body Estimation from Video",
  You et al., ICCV 2023), the baseline LIFD-HMR's LDMP is measured against.
- `authors`: `from_authors(name, state_dict)` loads the authors' released checkpoints (MixSTE, RTPCA,
  EfficientHuman, PMCE's CoevoBlock, RLE's flow) into these models, outputs equal to theirs.

Importing any of them loads no renderer, no smplx and no pandas.
"""
