"""The keypoint template on the free body model: build time and how well keypoints recover the full mesh.

    python benchmarks/bench_keypoints.py [--fit 512] [--test 256] [--random 10]

Times `keypoint_template` (landmark rays, posed bodies, greedy selection; first call, uncached), then
fits the linear map ``vertices ≈ [keypoints, 1] W`` on `fit` random plausible bodies and reports the
mean per-vertex error (mm) over all 13,718 vertices of `test` other bodies, for: the 24 joints; + the
47 mocap markers; + the 20 greedy markers (the 91-keypoint template); + 20 random vertices instead of
the greedy ones (mean ± std over `random` draws); and the 96-keypoint variant (+ HybrIK's 5 leaves).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hmrlab import body
from hmrlab.nn import keypoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fit", type=int, default=512)
    parser.add_argument("--test", type=int, default=256)
    parser.add_argument("--random", type=int, default=10)
    args = parser.parse_args()
    arrays = body.body_model_arrays("smpl")
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    started = time.perf_counter()
    template = keypoints.keypoint_template("paper91")
    print(f"keypoint_template('paper91') first call: {time.perf_counter() - started:.1f} s")
    code = keypoints.keypoint_template("code96")

    fit_vertices, fit_joints = keypoints.sample_posed_meshes(arrays, args.fit, seed=0)
    test_vertices, test_joints = keypoints.sample_posed_meshes(arrays, args.test, seed=1)

    def error_mm(vertex_ids: list[int]) -> float:
        fit_keys = torch.cat([fit_joints, fit_vertices[:, vertex_ids]], 1).double()
        test_keys = torch.cat([test_joints, test_vertices[:, vertex_ids]], 1).double()
        return 1000 * keypoints.vertex_regression_error(fit_keys, fit_vertices.double(), test_keys, test_vertices.double())

    mocap, greedy = list(template.marker_vertex_ids[:47]), list(template.marker_vertex_ids[47:])
    print(f"held-out mean vertex error, {args.fit} fit / {args.test} test bodies, all {fit_vertices.shape[1]} vertices:")
    print(f"  24 joints                           {error_mm([]):6.2f} mm")
    print(f"  + 47 mocap markers                  {error_mm(mocap):6.2f} mm")
    print(f"  + 20 greedy markers (91 keypoints)  {error_mm(mocap + greedy):6.2f} mm")
    print(f"  + 5 leaves (96 keypoints)           {error_mm(list(code.leaf_vertex_ids) + mocap + greedy):6.2f} mm")
    rng = np.random.default_rng(0)
    random = [error_mm(mocap + rng.choice(fit_vertices.shape[1], 20, replace=False).tolist()) for _ in range(args.random)]
    print(f"  + 20 random vertices instead        {np.mean(random):6.2f} ± {np.std(random):.2f} mm")


if __name__ == "__main__":
    main()
