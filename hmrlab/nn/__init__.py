"""The papers' mechanisms, one module each: the building blocks the models of `hmrlab.models` are made of.

| module | mechanism | paper |
|---|---|---|
| `wavelets` | batched, differentiable DWT/IDWT equal to PyWavelets | LIFD-HMR (frequency split) |
| `wavelet_kernels` | single-pass numba DWT/IDWT for inference on the CPU | LIFD-HMR |
| `attention` | multi-head attention (one implementation), the pre-norm transformer block, LCP/LSP pooling, MACs | LIFD-HMR, MixSTE, RTPCA |
| `pyramid` | temporal pyramid compression-and-amplification (TPCA) | RTPCA |
| `backbones` | ResNet-18/34/50 (`ResNetLayout` shared with the binarized ResNets), MobileNetV3, torchvision's state_dict keys, feature maps by stage | all |
| `mgfenet` | MGFENet: 7x7 depthwise, multi-stage feature concatenation, global filter | keypoints-guided HMR |
| `keypoints` | the 91-keypoint template (joints + surface markers) and greedy marker selection | keypoints-guided HMR |
| `simcc` | coordinates as classification over bins | keypoints-guided HMR |
| `rle` | residual log-likelihood estimation with RealNVP flows | keypoints-guided HMR |
| `ik` | analytical inverse kinematics with twist, swing-twist decomposition | keypoints-guided HMR (HybrIK) |
| `binary` | sign with surrogate gradients, RPReLU, binary layers, DScR/FUR/FDR/DSaR, binarized ResNets, OPs | BiDRN |
| `bitpack` | bit-packed XNOR-popcount inference, the readable reference | BiDRN |
| `xnor`, `xnor_kernels` | packed binary layers and BiDRN units on fused numba XNOR-popcount kernels | BiDRN |
| `roi_align` | RoIAlign with torchvision's semantics | BiDRN (Hand4Whole) |

Importing any of them loads torch, NumPy, SciPy and PyWavelets at most: no renderer, no smplx, no pandas.
The numba kernels compile on first use (`numba_backend`: one loader, ``HMRLAB_NUMBA=0`` to use the
pure-torch paths, which give the same results).
"""
