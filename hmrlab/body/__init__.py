"""Parametric body models: loading SMPL / SMPL-X, a from-scratch linear blend skinning, joint sets.

- `load_body_model` gives a ready smplx module (``smplx.SMPL`` or ``smplx.SMPLX``): by default the
  free model shipped in ``hmrlab/assets/body_models`` (`hmrlab.paths.BODY_MODELS`) (``hmrlab_free_smpl.npz``,
  ``hmrlab_free_smplx.npz``; the environment variable ``HMRLAB_BODY_MODEL_DIR`` names another
  folder), or the licensed SMPL / SMPL-X files given by ``path``, read without chumpy.
- `body_model_arrays` gives the raw arrays of the same files, for `BodyModel` and the
  `lbs` functions (`hmrlab.body.lbs`, written from the SMPL paper, equal to smplx's output).
- `hmrlab.body.skeletons`: joint names and kinematic trees (SMPL-24, SMPL-X-55, Human3.6M-17, COCO-17).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hmrlab import paths
from hmrlab.body.lbs import (
    BodyModel,
    blend_shapes,
    check_body_params,
    forward_kinematics,
    linear_blend_skinning,
    pose_feature,
    regress_joints,
    rigid_transform,
    skin,
)
from hmrlab.body.model_files import (
    OPTIONAL_KEYS,
    REQUIRED_KEYS,
    check_model_arrays,
    read_model_file,
    read_unchecked,
)
from hmrlab.body.skeletons import (
    COCO_17,
    H36M_17,
    SMPL_24,
    SMPLX_55,
    Skeleton,
    joint_mapping,
    shared_joints,
)
from hmrlab.io import atomic_save_npz

if TYPE_CHECKING:  # smplx (and its imports) load only when a smplx module is built
    import smplx

SMPL_JOINT_NAMES = SMPL_24.joint_names
SMPL_PARENTS = SMPL_24.parents
SMPLX_JOINT_NAMES = SMPLX_55.joint_names
SMPLX_PARENTS = SMPLX_55.parents
H36M_JOINT_NAMES = H36M_17.joint_names
H36M_PARENTS = H36M_17.parents
COCO_JOINT_NAMES = COCO_17.joint_names
COCO_PARENTS = COCO_17.parents

BodyKind = Literal["smpl", "smplx"]

MODEL_DIR_ENV = "HMRLAB_BODY_MODEL_DIR"

_FILE_PREFIX = {"smpl": "SMPL", "smplx": "SMPLX"}
_GENDERS = ("neutral", "male", "female")
_LICENCE_HINT = (
    "Licensed SMPL files come from https://smpl.is.tue.mpg.de and SMPL-X files from "
    "https://smpl-x.is.tue.mpg.de after registering; calling with path=None uses the free model "
    "shipped with hmrlab instead."
)

__all__ = [
    "BodyKind", "BodyModel", "COCO_17", "COCO_JOINT_NAMES", "COCO_PARENTS", "H36M_17",
    "H36M_JOINT_NAMES", "H36M_PARENTS", "MODEL_DIR_ENV", "REQUIRED_KEYS", "SMPLX_55", "SMPLX_JOINT_NAMES",
    "SMPLX_PARENTS", "SMPL_24", "SMPL_JOINT_NAMES", "SMPL_PARENTS", "Skeleton", "blend_shapes",
    "body_model_arrays", "body_model_file", "check_body_params", "check_model_arrays", "forward_kinematics",
    "joint_mapping", "linear_blend_skinning", "load_body_model", "pose_feature", "read_model_file",
    "regress_joints", "rigid_transform", "shared_joints", "skin",
]


def _check_kind_and_gender(kind: str, gender: str) -> None:
    if kind not in _FILE_PREFIX:
        raise ValueError(f"kind must be 'smpl' or 'smplx'; got {kind!r}")
    if gender not in _GENDERS:
        raise ValueError(f"gender must be one of {_GENDERS}; got {gender!r}")


def body_model_file(kind: BodyKind = "smpl", path: str | os.PathLike | None = None, gender: str = "neutral") -> Path:
    """The model file `load_body_model` reads: the free model, `path` itself, or a file in folder `path`.

    A folder may be laid out as smplx expects, ``<path>/<kind>/SMPL_NEUTRAL.pkl`` or
    ``<path>/smplx/SMPLX_FEMALE.npz``, or hold those files directly; ``.npz`` is preferred to ``.pkl``.
    Raises `FileNotFoundError` listing what was looked for and where licensed files come from.
    """
    _check_kind_and_gender(kind, gender)
    if path is None:
        if gender != "neutral":
            raise ValueError(
                f"the free model has a neutral body only; got gender={gender!r}. Pass path= to a "
                f"licensed {_FILE_PREFIX[kind]} model for gendered bodies."
            )
        folder = Path(os.environ.get(MODEL_DIR_ENV) or paths.BODY_MODELS)
        file = folder / f"hmrlab_free_{kind}.npz"
        if not file.is_file():
            raise FileNotFoundError(
                f"the free {kind} model {file} is missing. Build it with "
                f"`python -m tools.build_free_model`, or set {MODEL_DIR_ENV} to the folder holding "
                f"hmrlab_free_{kind}.npz. {_LICENCE_HINT}"
            )
        return file
    path = Path(path).expanduser()
    if path.is_file():
        return path
    stem = f"{_FILE_PREFIX[kind]}_{gender.upper()}"
    candidates = [folder / f"{stem}.{ext}" for folder in (path / kind, path) for ext in ("npz", "pkl")]
    if path.is_dir():
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"no {kind} model in the folder {path}: looked for {', '.join(map(str, candidates))}. {_LICENCE_HINT}"
        )
    raise FileNotFoundError(
        f"{path} does not exist: pass a model file (.npz/.pkl) or a folder holding {kind}/{stem}.npz or "
        f"{kind}/{stem}.pkl. {_LICENCE_HINT}"
    )


def _checked_arrays(file: Path, kind: BodyKind) -> dict[str, np.ndarray]:
    return check_model_arrays(read_unchecked(file), kind, str(file))


def body_model_arrays(
    kind: BodyKind = "smpl", path: str | os.PathLike | None = None, gender: str = "neutral"
) -> dict[str, np.ndarray]:
    """The raw arrays of a body model (same files as `load_body_model`), checked by `check_model_arrays`
    (smplx's keys present, shapes consistent, indices in range, values finite).

    SMPL layout: ``v_template`` (N, 3) metres, ``shapedirs`` (N, 3, K), ``posedirs`` (N, 3, 9(J-1)),
    ``J_regressor`` (J, N), ``weights`` (N, J), ``kintree_table`` (2, J), ``f`` (F, 3); the free
    model adds ``joint_names``, ``extra_vertex_names``/``extra_vertex_ids``, ``J_regressor_h36m``
    (17, N) and the mesh ``downsample``/``upsample`` matrices. Pass the result to `BodyModel`.
    """
    return _checked_arrays(body_model_file(kind, path, gender), kind)


def _free_vertex_ids(arrays: dict[str, np.ndarray]) -> dict[str, int] | None:
    """smplx's extra-keypoint vertices (nose, ears, toes, finger tips) stored in the free model."""
    if "extra_vertex_names" not in arrays:
        return None
    names, ids = arrays["extra_vertex_names"].tolist(), arrays["extra_vertex_ids"].tolist()
    return {str(name): int(index) for name, index in zip(names, ids)}


def load_body_model(
    kind: BodyKind = "smpl",
    path: str | os.PathLike | None = None,
    gender: str = "neutral",
    **smplx_kwargs: Any,
) -> smplx.SMPL | smplx.SMPLX:
    """A smplx body model: the shipped free model (``path=None``) or licensed SMPL / SMPL-X files.

    `path` is a model file (``.npz`` or ``.pkl``; pickles are read without chumpy, see
    `read_model_file`) or a folder as in `body_model_file`. `smplx_kwargs` go to ``smplx.SMPL`` /
    ``smplx.SMPLX`` (``num_betas``, ``batch_size``, ``dtype``, ``use_pca``, ...). The extra joints
    smplx appends after the skeleton (nose, eyes, ears, toes, finger tips) use the free model's own
    vertex ids, or smplx's ids for the licensed meshes. Whatever the file (``path``, the shipped model
    or ``HMRLAB_BODY_MODEL_DIR``), hmrlab reads it and checks its arrays (`check_model_arrays`) before
    smplx sees them; smplx never opens the file itself.
    """
    file = body_model_file(kind, path, gender)
    arrays = _checked_arrays(file, kind)
    vertex_ids = smplx_kwargs.pop("vertex_ids", None) or _free_vertex_ids(arrays)
    with _quiet_shape_space_warning():
        return _build_smplx_module(kind, file, arrays, gender, vertex_ids, smplx_kwargs)


@contextlib.contextmanager
def _quiet_shape_space_warning():
    """smplx prints a warning whenever a file has fewer than 300 shape directions (every file but
    the licensed SMPL-X ones); drop that line and pass anything else it prints through."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        yield
    for line in captured.getvalue().splitlines():
        if not line.startswith("WARNING: You are using a SMPL"):
            print(line)


def _build_smplx_module(
    kind: BodyKind,
    file: Path,
    arrays: dict[str, np.ndarray],
    gender: str,
    vertex_ids: dict[str, int] | None,
    smplx_kwargs: dict[str, Any],
) -> smplx.SMPL | smplx.SMPLX:
    """The smplx module for arrays already read and checked (see `load_body_model`).

    smplx sees only those arrays, never the user's file (smplx would unpickle it itself): SMPL's go in
    a ``data_struct``, and SMPL-X's, which smplx reads only from a file (``np.load(allow_pickle=True)``,
    no ``data_struct`` argument), are written to a clean npz in a temporary folder first, for the
    shipped model and a ``HMRLAB_BODY_MODEL_DIR`` folder too. Then the vertex ids are set (smplx
    fixes SMPL-X's to the licensed mesh).
    """
    import smplx
    from smplx.utils import Struct
    from smplx.vertex_joint_selector import VertexJointSelector

    known = {key: arrays[key] for key in REQUIRED_KEYS[kind] + OPTIONAL_KEYS[kind] if key in arrays}
    if smplx_kwargs.get("use_face_contour") and not all(key in known for key in OPTIONAL_KEYS["smplx"]):
        raise ValueError(
            f"{file} has no face contour ({', '.join(OPTIONAL_KEYS['smplx'])}); "
            "pass use_face_contour=False or a licensed SMPL-X file that has it"
        )
    if kind == "smpl":
        return smplx.SMPL(str(file), data_struct=Struct(**known), gender=gender, vertex_ids=vertex_ids, **smplx_kwargs)
    with tempfile.TemporaryDirectory(prefix="hmrlab_smplx_") as tmp:
        clean = atomic_save_npz(Path(tmp) / f"SMPLX_{gender.upper()}.npz", **known)
        model = smplx.SMPLX(str(clean), ext="npz", gender=gender, **smplx_kwargs)
    if vertex_ids is not None:
        selector_options = {k: smplx_kwargs[k] for k in ("use_hands", "use_feet_keypoints") if k in smplx_kwargs}
        model.vertex_joint_selector = VertexJointSelector(vertex_ids=vertex_ids, **selector_options)
    return model
