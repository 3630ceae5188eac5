"""The keypoint template on the free body model: build time and how well keypoints recover the full mesh.

    python benchmarks/bench_keypoints.py [--fit 512] [--test 256] [--random 10]    # from the repository root

Times `keypoint_template` (landmark rays, posed bodies, greedy selection; first call, uncached), then
fits the linear map ``vertices ≈ [keypoints, 1] W`` on `fit` random plausible bodies and reports the
mean per-vertex error (mm) over all 13,718 vertices of `test` other bodies, for: the 24 joints; + the
47 mocap markers; + the 20 greedy markers (the 91-keypoint template); + 20 random vertices instead of
the greedy ones (mean ± std over `random` draws); and the 96-keypoint variant (+ HybrIK's 5 leaves).
``rows`` gives the greedy markers against random ones, and the markers against joints alone, to
``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from timing import Row

from hmrlab import body
from hmrlab.nn import keypoints

JOINTS = "24 joints"
MOCAP = "+ 47 mocap markers"
GREEDY = "+ 20 greedy markers (91 keypoints)"
LEAVES = "+ 5 leaves (96 keypoints)"
RANDOM = "+ 20 random vertices instead"


def errors(fit: int, test: int, random: int) -> tuple[dict[str, float], list[float], float, int]:
    """Held-out mean vertex error (mm) per keypoint set, the `random` draws' errors, the template's
    first-call build time (s) and the vertex count."""
    arrays = body.body_model_arrays("smpl")
    started = time.perf_counter()
    template = keypoints.keypoint_template("paper91")
    build_seconds = time.perf_counter() - started
    code = keypoints.keypoint_template("code96")

    fit_vertices, fit_joints = keypoints.sample_posed_meshes(arrays, fit, seed=0)
    test_vertices, test_joints = keypoints.sample_posed_meshes(arrays, test, seed=1)

    def error_mm(vertex_ids: list[int]) -> float:
        fit_keys = torch.cat([fit_joints, fit_vertices[:, vertex_ids]], 1).double()
        test_keys = torch.cat([test_joints, test_vertices[:, vertex_ids]], 1).double()
        return 1000 * keypoints.vertex_regression_error(fit_keys, fit_vertices.double(),
                                                        test_keys, test_vertices.double())

    mocap, greedy = list(template.marker_vertex_ids[:47]), list(template.marker_vertex_ids[47:])
    results = {
        JOINTS: error_mm([]),
        MOCAP: error_mm(mocap),
        GREEDY: error_mm(mocap + greedy),
        LEAVES: error_mm(list(code.leaf_vertex_ids) + mocap + greedy),
    }
    rng = np.random.default_rng(0)
    draws = [error_mm(mocap + rng.choice(fit_vertices.shape[1], 20, replace=False).tolist()) for _ in range(random)]
    return results, draws, build_seconds, fit_vertices.shape[1]


def rows(quick: bool) -> list[Row]:
    fit, test, random = (64, 32, 2) if quick else (512, 256, 10)
    results, draws, _, _ = errors(fit, test, random)
    where = f"{fit} fit / {test} test bodies"
    return [
        Row(f"vertex error, 91 keypoints, {where}", results[GREEDY],
            f"20 random vertices (mean of {random})", float(np.mean(draws)), "mm"),
        Row(f"vertex error, 24 joints + 47 mocap markers, {where}", results[MOCAP], "24 joints alone",
            results[JOINTS], "mm"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fit", type=int, default=512)
    parser.add_argument("--test", type=int, default=256)
    parser.add_argument("--random", type=int, default=10)
    args = parser.parse_args()
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    results, draws, build_seconds, vertices = errors(args.fit, args.test, args.random)
    print(f"keypoint_template('paper91') first call: {build_seconds:.1f} s")
    print(f"held-out mean vertex error, {args.fit} fit / {args.test} test bodies, all {vertices} vertices:")
    for name, error in results.items():
        print(f"  {name:<36}{error:6.2f} mm")
    print(f"  {RANDOM:<36}{np.mean(draws):6.2f} ± {np.std(draws):.2f} mm")


if __name__ == "__main__":
    main()
