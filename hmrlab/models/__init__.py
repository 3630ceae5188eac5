"""Full models, one file per paper.

- `hmrlab.models.lifd_hmr`: LIFD-HMR (arXiv 2510.18267), video mesh recovery; for now its first stage,
  the LIFD-Extractor (wavelet split of backbone features into an attention branch and a convolution
  branch), and the same blocks without the wavelet split for the paper's ablation.
"""
