"""The authors' checkpoints in hmrlab's models: `from_authors` maps their state dicts onto our names.

hmrlab's models follow the papers' text; where the authors' released code builds the model differently,
the model of their code is a class of its own beside ours (`hmrlab.models.rtpca.RTPCAAuthors`), so that
their weights give their outputs. `from_authors` builds that model at the checkpoint's sizes (read from
the tensors' shapes where they tell them), renames and splits the tensors, loads them strictly (every
tensor used, none missing) and returns the model in eval mode. Tested against each repository's own
model on random weights (``tests/fidelity``, whose README names the commits).

What ``name`` loads (the authors' repository and class -> the hmrlab model):

* ``"mixste"``: JinluZhang1126/MixSTE, ``MixSTE2`` -> `hmrlab.models.mixste.MixSTE` (whose default ``norm_eps=1e-6`` is theirs);
* ``"rtpca"``: hbing-l/RTPCA, ``MixSTE2`` -> `hmrlab.models.rtpca.RTPCAAuthors`;
* ``"rle_flow"``: Jeff-sjtu/res-loglikelihood-regression, ``RealNVP`` (their ``flow``, ``flow2d``,
  ``flow3d``) -> `hmrlab.nn.rle.RealNVP` holding their masks;
* ``"pmce_coevo"``: kasvii/PMCE, ``CoevoBlock`` -> `hmrlab.models.pmce.CoevoBlock`, or the
  ``coevoblock1..3`` of their ``Pose2Mesh`` -> `hmrlab.models.pmce.CoevoDecoder`;
* ``"efficienthuman"``: ChrisChenYh/EfficientHuman, ``MGFENet("big_7x7")`` + ``RTMCCHead`` ->
  `hmrlab.models.keypoint_hmr.EfficientHumanAuthors` (`MGFENetAuthors` + `AuthorsKeypointHead`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor, nn

from hmrlab.models.keypoint_hmr import EfficientHumanAuthors
from hmrlab.models.mixste import MixSTE
from hmrlab.models.pmce import CoevoBlock, CoevoDecoder
from hmrlab.models.rtpca import RTPCAAuthors
from hmrlab.nn.rle import RealNVP

__all__ = ["AUTHORS_MODELS", "from_authors", "map_state_dict"]

AUTHORS_MODELS = ("mixste", "rtpca", "rle_flow", "pmce_coevo", "efficienthuman")
"""The names `from_authors` knows."""

# Renames inside one transformer block (timm's names -> ours); the fused projections are split apart.
_BLOCK_RENAMES = {"attn.proj.": "attention.out.", "mlp.fc1.": "mlp.0.", "mlp.fc2.": "mlp.3."}
_TOP_RENAMES = {
    "Spatial_patch_to_embedding.": "embed.",
    "Spatial_pos_embed": "spatial_position",
    "Temporal_pos_embed": "temporal_position",
    "Spatial_norm.": "spatial_norm.",
    "Temporal_norm.": "temporal_norm.",
    "head.": "head.",
}
# RTPCA's temporal pyramid (their Attention's norm1..4, up1..3, upnorm1..3) -> AuthorsTemporalAttention.
_PYRAMID_RENAMES = {
    **{f"attn.norm{i}.": f"attention.pyramid.down_norms.{i - 1}." for i in (1, 2, 3)},
    **{f"attn.up{i}.": f"attention.pyramid.up.{i - 1}." for i in (1, 2, 3)},
    **{f"attn.upnorm{i}.": f"attention.pyramid.up_norms.{i - 1}." for i in (1, 2, 3)},
    "attn.norm4.": "attention.context_norm.",
}
_BLOCK_KEY = re.compile(r"(STEblocks|TTEblocks)\.(\d+)\.(.*)")


def _unwrap(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The model's tensors: a checkpoint's ``model_pos`` entry if there, without DataParallel's ``module.``."""
    if "model_pos" in state_dict and isinstance(state_dict["model_pos"], Mapping):
        state_dict = state_dict["model_pos"]
    return {key.removeprefix("module."): value for key, value in state_dict.items()}


def _rename(key: str, renames: Mapping[str, str]) -> str | None:
    for theirs, ours in renames.items():
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    return None


def _map_block(rest: str, value: Tensor, prefix: str, temporal_pyramid: bool) -> dict[str, Tensor]:
    """One block tensor (name after ``STEblocks.i.``) -> our tensors under ``prefix`` (none if unused)."""
    if rest.startswith(("norm1.", "norm2.")):
        return {prefix + rest: value}
    if rest.startswith("attn.qkv."):  # MixSTE: rows Q, K, V
        return {f"{prefix}attention.{n}.{rest[9:]}": part for n, part in zip("qkv", value.chunk(3))}
    if rest.startswith("attn.kv."):  # RTPCA: rows K, V
        return {f"{prefix}attention.{n}.{rest[8:]}": part for n, part in zip("kv", value.chunk(2))}
    if rest.startswith("attn.q."):
        return {f"{prefix}attention.q.{rest[7:]}": value}
    renamed = _rename(rest, _BLOCK_RENAMES)
    if renamed is not None:
        return {prefix + renamed: value}
    renamed = _rename(rest, _PYRAMID_RENAMES)
    if renamed is not None:
        # The authors' spatial attentions carry pyramid weights too, never used in their forward.
        return {prefix + renamed: value} if temporal_pyramid else {}
    raise KeyError(f"unexpected tensor in an authors' block: {rest!r}")


def map_state_dict(name: str, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The authors' state dict (or checkpoint) for model ``name`` under hmrlab's names (see `from_authors`).

    Strips DataParallel's ``module.``, takes a checkpoint's ``model_pos``, renames (``STEblocks.i`` ->
    ``spatial_blocks.i``, ``TTEblocks.i`` -> ``temporal_blocks.i``, ``attn.proj`` -> ``attention.out``,
    ``mlp.fc1``/``fc2`` -> ``mlp.0``/``mlp.3``, the top-level names as in `MixSTE`'s docstring) and splits
    MixSTE's fused ``attn.qkv`` (rows Q, K, V) and RTPCA's ``attn.kv`` (rows K, V) into ``q``, ``k``, ``v``.
    For ``"rtpca"`` the spatial blocks' unused pyramid tensors are dropped. KeyError on a tensor it does
    not know.
    """
    if name not in AUTHORS_MODELS:
        raise ValueError(f"unknown authors' model {name!r}; known: {', '.join(AUTHORS_MODELS)}")
    if name == "rle_flow":
        return _map_flow(state_dict)
    if name == "pmce_coevo":
        return _map_coevo(state_dict)
    if name == "efficienthuman":
        return _map_efficienthuman(state_dict)
    ours = {}
    for key, value in _unwrap(state_dict).items():
        match = _BLOCK_KEY.fullmatch(key)
        if match:
            view, index, rest = match.groups()
            prefix = f"{'spatial' if view == 'STEblocks' else 'temporal'}_blocks.{index}."
            ours.update(_map_block(rest, value, prefix, temporal_pyramid=name == "rtpca" and view == "TTEblocks"))
            continue
        renamed = _rename(key, _TOP_RENAMES)
        if renamed is None:
            raise KeyError(f"unexpected tensor in the authors' {name} state dict: {key!r}")
        ours[renamed] = value
    return ours


def _map_flow(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """RLE's ``RealNVP`` (``mask``, ``s.i``, ``t.i``) -> ours (``masks``, ``scale_nets.i``, ``shift_nets.i``)."""
    ours = {}
    for key, value in _unwrap(state_dict).items():
        renamed = _rename(key, {"mask": "masks", "s.": "scale_nets.", "t.": "shift_nets."})
        if renamed is None:
            raise KeyError(f"unexpected tensor in the authors' RealNVP state dict: {key!r}")
        ours[renamed] = value
    return ours


_COEVO_RENAMES = {
    "joint_proj.": "joint_embed.", "vertx_proj.": "vertex_embed.", "joint_pos_embed": "joint_position",
    "vertx_pos_embed": "vertex_position", "j_Q_embed": "joint_query", "v_Q_embed": "vertex_query",
    "proj_v2j_dim.": "vertex_to_joint.", "proj_j2v_dim.": "joint_to_vertex.", "v2j_K_embed": "vertex_key",
    "j2v_K_embed": "joint_key", "joint_SA_FFN.": "joint_self.", "vertx_SA_FFN.": "vertex_self.",
    "joint_CA_FFN.": "joint_cross.", "vertx_CA_FFN.": "vertex_cross.", "proj_joint_feat2coor.": "joint_head.",
    "proj_vertx_feat2coor.": "vertex_head.",
}
_COEVO_INNER = {
    "normq.": "norm_query.", "normk.": "norm_key.", "normv.": "norm_value.", "norm1.": "norm1.", "norm2.": "norm2.",
    "attn.wq.": "attention.q.", "attn.wk.": "attention.k.", "attn.wv.": "attention.v.", "attn.proj.": "attention.out.",
    "mlp.fc1.": "mlp.0.", "mlp.fc2.": "mlp.2.",
}
_COEVO_DECODER_KEY = re.compile(r"(?:.*\.)?coevoblock(\d+)\.(.*)")


def _map_coevo_block(state_dict: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    ours = {}
    for key, value in state_dict.items():
        top = _rename(key, _COEVO_RENAMES)
        if top is None:
            raise KeyError(f"unexpected tensor in the authors' CoevoBlock state dict: {key!r}")
        head, _, rest = top.partition(".")
        if rest and head.endswith(("_self", "_cross")):
            if rest.startswith("attn.qkv."):
                parts = zip("qkv", value.chunk(3))
                ours.update({f"{prefix}{head}.attention.{n}.{rest[9:]}": part for n, part in parts})
                continue
            inner = _rename(rest, _COEVO_INNER)
            if inner is None:
                raise KeyError(f"unexpected tensor in the authors' CoevoBlock state dict: {key!r}")
            top = f"{head}.{inner.replace('.mlp_gamma.', '.gamma.').replace('.mlp_beta.', '.beta.')}"
        ours[prefix + top] = value
    return ours


def _map_coevo(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """PMCE's CoevoBlock -> `CoevoBlock`; their ``coevoblock1..n`` (any prefix) -> `CoevoDecoder`'s ``blocks``."""
    state = _unwrap(state_dict)
    blocks: dict[int, dict[str, Tensor]] = {}
    for key, value in state.items():
        match = _COEVO_DECODER_KEY.fullmatch(key)
        if match:
            blocks.setdefault(int(match.group(1)), {})[match.group(2)] = value
    if not blocks:
        return _map_coevo_block(state)
    ours = {}
    for index, number in enumerate(sorted(blocks)):
        ours.update(_map_coevo_block(blocks[number], f"blocks.{index}."))
    return ours


def _coevo_sizes(state: Mapping[str, Tensor], prefix: str) -> dict:
    return {
        "joint_dim": state[prefix + "joint_embed.weight"].shape[0],
        "vertex_dim": state[prefix + "vertex_embed.weight"].shape[0],
        "mlp_ratio": state[prefix + "joint_self.mlp.0.weight"].shape[0] / state[prefix + "joint_embed.weight"].shape[0],
        "context_dim": state[prefix + "joint_self.norm1.gamma.weight"].shape[1],
    }


def _build_coevo(state: Mapping[str, Tensor], sizes: dict) -> nn.Module:
    if "blocks.0.joint_position" not in state:
        read = {"num_joints": state["joint_position"].shape[1], "num_vertices": state["vertex_position"].shape[1],
                **_coevo_sizes(state, "")}
        return CoevoBlock(**{**read, **sizes})
    if "vertex_joint" not in sizes:
        raise ValueError("PMCE's decoder needs vertex_joint=(V,) nearest-joint indices (their vj_relation); "
                         "see hmrlab.models.lifd_hmr.nearest_joint")
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    read = {"num_joints": state["blocks.0.joint_position"].shape[1], "depth": depth, **_coevo_sizes(state, "blocks.0.")}
    return CoevoDecoder(**{**read, **sizes})


_MGFENET_BLOCK = re.compile(r"layer(\d+)\.(.*)")
_MGFENET_INNER = {
    "complex_weight": "global_filter.weight", "expand_conv.conv.": "expand.0.", "expand_conv.bn.": "expand.1.",
    "depthwise_conv.conv.": "depthwise.0.", "depthwise_conv.bn.": "depthwise.1.", "linear_conv.conv.": "project.0.",
    "linear_conv.bn.": "project.1.", "se.conv1.conv.": "se.fc1.", "se.conv2.conv.": "se.fc2.",
}
_RTMCC_HEAD = {
    "final_layer.": "to_keypoints.", "mlp.0.g": "embed.0.gain", "mlp.1.": "embed.1.", "gau.gamma": "attention.gamma",
    "gau.beta": "attention.beta", "gau.o.": "attention.out.", "gau.uv.": "attention.uvz.",
    "gau.ln.g": "attention.norm.gain", "gau.res_scale.scale": "attention.residual_scale",
    **{f"cls_{axis}_{kind}.": f"{'coords' if kind == 'coord' else 'sigma'}.{i}."
       for i, axis in enumerate("uvd") for kind in ("coord", "sigma")},
}


def _map_efficienthuman(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Their model's ``preact.*`` (MGFENet) and ``pose_head.*`` (RTMCCHead) -> `EfficientHumanAuthors`."""
    ours = {}
    for key, value in _unwrap(state_dict).items():
        if key.startswith("preact."):
            key = key[len("preact."):]
            match = _MGFENET_BLOCK.fullmatch(key)
            if match:
                inner = _rename(match.group(2), _MGFENET_INNER)
                renamed = None if inner is None else f"blocks.{int(match.group(1)) - 1}.{inner}"
            else:
                renamed = _rename(key, {"conv1.conv.": "stem.0.", "conv1.bn.": "stem.1.", "conv2.conv.": "final.0."})
            if renamed is None:
                raise KeyError(f"unexpected tensor in the authors' MGFENet: {key!r}")
            ours["backbone." + renamed] = value
        elif key.startswith("pose_head."):
            renamed = _rename(key[len("pose_head."):], _RTMCC_HEAD)
            if renamed is None:
                raise KeyError(f"unexpected tensor in the authors' RTMCCHead: {key!r}")
            ours["head." + renamed] = value
    if not ours:
        raise KeyError("no preact.* (MGFENet) or pose_head.* (RTMCCHead) tensors: pass their whole model's state dict")
    return ours


def _temporal_sizes(state: Mapping[str, Tensor], sizes: dict) -> dict:
    """MixSTE2's sizes read off its tensors; ``sizes`` (heads, and any others) override and are checked."""
    dim, in_features = state["embed.weight"].shape
    read = {
        "num_joints": state["spatial_position"].shape[1],
        "in_features": in_features,
        "out_features": state["head.1.weight"].shape[0],
        "dim": dim,
        "depth": 1 + max(int(k.split(".")[1]) for k in state if k.startswith("spatial_blocks.")),
        "mlp_ratio": state["spatial_blocks.0.mlp.0.weight"].shape[0] / dim,
        "frames": state["temporal_position"].shape[1],
    }
    for key, value in sizes.items():
        if key in read and read[key] != value:
            raise ValueError(f"{key}={value} disagrees with the state dict, whose tensors give {key}={read[key]}")
    return {"heads": 8, **read, **sizes}


def from_authors(name: str, state_dict: Mapping[str, Tensor], **sizes) -> nn.Module:
    """hmrlab's model of the authors' code ``name`` (module docstring) with their weights loaded, in eval mode.

    state_dict: their model's ``state_dict()``, or a checkpoint holding it under ``model_pos`` (as
    MixSTE's and RTPCA's ``run.py`` save it), either with DataParallel's ``module.`` prefix or without.
    sizes: keyword arguments of the model. Those the tensors tell are read from them and checked
    against ``sizes``; the others take the authors' values:

    * ``"mixste"``, ``"rtpca"``: num_joints, in_features, out_features, dim, depth, mlp_ratio and frames
      are read; ``heads`` (not visible in the tensors) is their 8. The model takes their input, clips
      (B, T, J, 2) of 2D poses (T = frames for RTPCA), and gives (B, T, J, 3).
    * ``"rle_flow"``: their ``RealNVP`` tensors without the model's prefix (``flow.``, ``flow2d.``);
      dim, couplings and width are read; their masks keep the *last* coordinates first, ours the first.
    * ``"pmce_coevo"``: a ``CoevoBlock``'s tensors give a `CoevoBlock`; a state dict with
      ``coevoblock1..n`` (e.g. a whole PMCE checkpoint, whose other tensors are ignored) a
      `CoevoDecoder`, which needs ``vertex_joint`` (V,) (their ``vj_relation``); heads are their 8 and 2.
    * ``"efficienthuman"``: their ``SMPLCamRLESimccVMMGFENet`` state dict, of which the ``preact.*``
      (MGFENet) and ``pose_head.*`` (RTMCCHead) tensors are used; 256 x 256 images. Its RLE flows load
      with ``"rle_flow"``.

    Loading is strict (KeyError on a tensor the mapping does not know, RuntimeError on a missing one);
    outputs equal theirs to float32 rounding (``tests/fidelity``). Example::

        model = from_authors("mixste", torch.load("best_epoch.bin", map_location="cpu", weights_only=True))
    """
    state = map_state_dict(name, state_dict)
    if name == "efficienthuman":
        model = EfficientHumanAuthors(**{"num_keypoints": state["head.to_keypoints.weight"].shape[0], **sizes})
    elif name == "pmce_coevo":
        model = _build_coevo(state, dict(sizes))
        if isinstance(model, CoevoDecoder):  # PMCE computes it from the template; it is no tensor of theirs
            state["vertex_joint"] = model.vertex_joint
    elif name == "rle_flow":
        masks = state["masks"]
        hidden = state["scale_nets.0.0.weight"].shape[0]
        read = {"dim": masks.shape[1], "num_couplings": masks.shape[0], "hidden": hidden}
        model = RealNVP(**{**read, **sizes})
    elif name == "mixste":
        model = MixSTE(**{"norm_eps": 1e-6, **_temporal_sizes(state, dict(sizes))})
    else:
        model = RTPCAAuthors(**_temporal_sizes(state, dict(sizes)))
    model.load_state_dict(state, strict=True)
    return model.eval()
