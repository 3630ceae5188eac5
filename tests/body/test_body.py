"""hmrlab.body: loading SMPL / SMPL-X files into smplx, equal to smplx built directly and to our LBS;
error messages; the shipped free models (skipped, with the reason, while their files are absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import smplx
import torch
from smplx.utils import Struct
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS
from test_lbs import smplx_vertex_ids, synthetic_body_arrays
from test_model_files import write_chumpy_pickle

import hmrlab.body as body
from hmrlab import paths
from hmrlab.body import (
    MODEL_DIR_ENV,
    BodyModel,
    body_model_arrays,
    body_model_file,
    load_body_model,
)
from hmrlab.io import atomic_save_npz


def random_params(model: smplx.SMPL, batch: int, seed: int) -> dict[str, torch.Tensor]:
    """Random inputs for a smplx model (SMPL-X: also expressions, jaw, eyes, hand PCA)."""
    g = torch.Generator().manual_seed(seed)
    params = {
        "betas": torch.randn(batch, model.num_betas, generator=g),
        "global_orient": torch.randn(batch, 3, generator=g),
        "body_pose": 0.5 * torch.randn(batch, model.NUM_BODY_JOINTS * 3, generator=g),
        "transl": torch.randn(batch, 3, generator=g),
    }
    if isinstance(model, smplx.SMPLX):
        params["expression"] = torch.randn(batch, model.num_expression_coeffs, generator=g)
        for name in ("jaw_pose", "leye_pose", "reye_pose"):
            params[name] = 0.3 * torch.randn(batch, 3, generator=g)
        for name in ("left_hand_pose", "right_hand_pose"):
            params[name] = torch.randn(batch, model.num_pca_comps, generator=g)
    return {k: v.to(model.shapedirs.dtype) for k, v in params.items()}


def assert_same_as_our_lbs(model: smplx.SMPL, arrays: dict[str, np.ndarray], atol: float) -> None:
    """smplx's forward equals `BodyModel` on the same arrays, on every joint of the kinematic tree."""
    params = random_params(model, batch=3, seed=0)
    out = model(**params, return_full_pose=True)
    shapes, shapedirs = params["betas"], model.shapedirs
    if isinstance(model, smplx.SMPLX):  # smplx stacks the expression directions after the betas
        shapes = torch.cat([shapes, params["expression"]], 1)
        shapedirs = torch.cat([shapedirs, model.expr_dirs], -1)
    arrays = {**arrays, "shapedirs": shapedirs.numpy()}
    ours = BodyModel(arrays, num_betas=shapes.shape[1], dtype=model.shapedirs.dtype)
    vertices, joints = ours(
        betas=shapes, global_orient=out.full_pose[:, :3], body_pose=out.full_pose[:, 3:], transl=params["transl"]
    )
    torch.testing.assert_close(vertices, out.vertices, atol=atol, rtol=0)
    torch.testing.assert_close(joints, out.joints[:, : ours.num_joints], atol=atol, rtol=0)


@pytest.mark.parametrize("kind", ["smpl", "smplx"])
def test_synthetic_npz_loads_and_equals_smplx(kind: str, tmp_path: Path) -> None:
    arrays = synthetic_body_arrays(kind)
    path = atomic_save_npz(tmp_path / f"model_{kind}.npz", **arrays)
    model = load_body_model(kind, path=path)
    assert type(model) is (smplx.SMPL if kind == "smpl" else smplx.SMPLX)
    assert_same_as_our_lbs(model, arrays, atol=1e-5)
    # smplx's extra keypoints come from the file's own vertex ids, not smplx's licensed-mesh ids.
    out = model()
    num_joints = len(arrays["kintree_table"][0])
    torch.testing.assert_close(out.joints[:, num_joints : num_joints + 21], out.vertices[:, arrays["extra_vertex_ids"]])
    if kind == "smpl":
        direct = smplx.SMPL("", data_struct=Struct(**arrays), vertex_ids=smplx_vertex_ids(arrays))
        params = random_params(model, batch=2, seed=1)
        torch.testing.assert_close(model(**params).joints, direct(**params).joints, atol=0, rtol=0)


def test_pickle_in_smplx_folder_layout_loads_by_gender(tmp_path: Path) -> None:
    arrays = synthetic_body_arrays("smpl", seed=3)
    (tmp_path / "smpl").mkdir()
    pickled = tmp_path / "smpl" / "SMPL_FEMALE.pkl"
    content = {k: v for k, v in arrays.items() if not k.startswith("extra_")}
    write_chumpy_pickle(content, pickled, tmp_path / "work", chumpy_keys=("v_template", "shapedirs", "weights"))
    assert body_model_file("smpl", tmp_path, gender="female") == pickled
    model = load_body_model("smpl", path=tmp_path, gender="female", dtype=torch.float64)
    assert model.gender == "female"
    torch.testing.assert_close(model.v_template, torch.from_numpy(arrays["v_template"].astype(np.float64)))
    # A licensed-style file has no extra ids: smplx's own SMPL-mesh ids are used.
    assert model.vertex_joint_selector.extra_joints_idxs[0] == SMPLX_VERTEX_IDS["smplh"]["nose"]
    # npz wins over pkl when both exist.
    npz = atomic_save_npz(tmp_path / "smpl" / "SMPL_FEMALE.npz", **content)
    assert body_model_file("smpl", tmp_path, gender="female") == npz


def test_environment_variable_names_the_free_model_folder(tmp_path: Path, monkeypatch) -> None:
    arrays = synthetic_body_arrays("smpl", seed=4)
    atomic_save_npz(tmp_path / "hmrlab_free_smpl.npz", **arrays)
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    assert body_model_file() == tmp_path / "hmrlab_free_smpl.npz"
    np.testing.assert_array_equal(body_model_arrays()["f"], arrays["f"])
    assert load_body_model().get_num_verts() == len(arrays["v_template"])


def test_missing_files_and_keys_explain_what_to_do(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        load_body_model("smplx", path=tmp_path / "nowhere.npz")
    message = str(missing.value)
    assert "smpl.is.tue.mpg.de" in message and "smpl-x.is.tue.mpg.de" in message and "path=None" in message
    with pytest.raises(FileNotFoundError, match=r"looked for .*smpl/SMPL_MALE\.npz"):
        load_body_model("smpl", path=tmp_path, gender="male")
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="build_free_model"):
        load_body_model("smpl")
    with pytest.raises(ValueError, match="neutral body only"):
        load_body_model("smpl", gender="female")
    with pytest.raises(ValueError, match="kind must be"):
        load_body_model("mano")
    smpl_file = atomic_save_npz(tmp_path / "model.npz", **synthetic_body_arrays("smpl"))
    with pytest.raises(ValueError, match=r"lacks the keys \['hands_componentsl'.*Is it a SMPLX model file"):
        load_body_model("smplx", path=smpl_file)


def test_joint_sets_are_exported_from_the_skeletons() -> None:
    assert body.SMPL_PARENTS == body.SMPL_24.parents and len(body.SMPL_JOINT_NAMES) == 24
    assert body.SMPLX_PARENTS == body.SMPLX_55.parents and len(body.SMPLX_JOINT_NAMES) == 55
    assert body.H36M_JOINT_NAMES == body.H36M_17.joint_names and body.COCO_PARENTS == body.COCO_17.parents


SHIPPED = {kind: paths.BODY_MODELS / f"hmrlab_free_{kind}.npz" for kind in ("smpl", "smplx")}


@pytest.mark.parametrize("kind", ["smpl", "smplx"])
def test_shipped_free_model(kind: str, monkeypatch) -> None:
    if not SHIPPED[kind].is_file():
        pytest.skip(f"{SHIPPED[kind]} is not built yet (python -m tools.build_free_model)")
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    arrays = body_model_arrays(kind)
    skeleton = body.SMPL_24 if kind == "smpl" else body.SMPLX_55
    parents = arrays["kintree_table"][0].astype(np.int64)
    parents[0] = -1
    assert tuple(parents) == skeleton.parents
    if "joint_names" in arrays:
        assert tuple(arrays["joint_names"]) == skeleton.joint_names
    num_vertices = len(arrays["v_template"])
    assert set(arrays["extra_vertex_names"]) == set(SMPLX_VERTEX_IDS["smplh"])
    if kind == "smpl":  # the Human3.6M regressor and the coarse mesh ship with the SMPL layout
        assert arrays["J_regressor_h36m"].shape == (17, num_vertices)
        assert arrays["downsample"].shape == (431, num_vertices)
    np.testing.assert_allclose(arrays["J_regressor"].sum(1), 1, atol=1e-4)
    np.testing.assert_allclose(arrays["weights"].sum(1), 1, atol=1e-4)
    model = load_body_model(kind)
    assert_same_as_our_lbs(model, arrays, atol=1e-5)
