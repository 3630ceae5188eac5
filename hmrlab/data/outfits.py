"""Outfits for synthetic people: per-vertex colours of shirt, trousers, shoes, skin, hair and eyes.

A body painted one colour is nearly the same picture from the front and from the back (notebook 09
measured it: given the true facing direction the mean body's error falls from 310 to 120 mm), so a
network cannot learn which way the person faces. People in photographs are not: the face and the
hair, the collar, sleeves and shoes tell front from back. `random_outfit` gives each synthetic
person such cues, drawn per sample:

- **parts**: every vertex belongs to the joint that moves it most (the argmax of its skinning
  weights, `body_part_labels`); the SMPL-X-format model's 55 joints are read as SMPL's 24 parts
  (jaw and eyes: the head; fingers: the hand);
- **clothes**: a shirt on the torso and upper arms (long sleeves with probability 0.5: the forearms
  too), trousers on the hips and thighs (long with probability 0.6: the shins too), shoes on the
  ankles and feet; each a random colour (`hmrlab.data.render.random_body_color`), or a dark one;
- **skin** on the head, neck, hands and whatever the clothes leave bare, a tone drawn from a range
  of skin colours;
- **hair**: the head's vertices behind a plane through the ears and above the brow, the plane
  tilted per sample (short or long hair), a dark, brown, blond or grey colour (absent with
  probability 0.1);
- **eyes**: the vertices within 1.2 cm of the model's ``reye`` / ``leye`` landmarks, nearly black.

The rest pose of the SMPL-format model faces +z with y up (`FacePlanes` reads the ears and eyes
off its landmark vertices), so "behind" is z below the ears' z.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from hmrlab.data.render import random_body_color

__all__ = ["OutfitParts", "body_part_labels", "outfit_parts", "random_outfit"]

# SMPL's 24 joints by index (hmrlab.body.skeletons.SMPL_24): which clothes cover them.
TORSO = (0, 3, 6, 9, 13, 14)  # pelvis belongs to the trousers below; spine, chest, collars
PELVIS = (0,)
UPPER_ARMS = (16, 17)
FOREARMS = (18, 19)
THIGHS = (1, 2)
SHINS = (4, 5)
FEET = (7, 8, 10, 11)
HEAD = (15,)
NECK = (12,)
HANDS = (20, 21, 22, 23)
# SMPL-X's 55 joints (hmrlab.body.SMPLX_JOINT_NAMES) as SMPL's parts: the first 22 are SMPL's, the
# jaw and both eyes are the head, each hand's 15 finger joints are SMPL's hand joint (22 left, 23 right).
SMPLX_TO_SMPL_PART = np.array([*range(22), 15, 15, 15, *[22] * 15, *[23] * 15])

SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.90, 0.72, 0.58], [0.78, 0.57, 0.44], [0.63, 0.45, 0.34],
                       [0.45, 0.31, 0.23], [0.32, 0.22, 0.16]])
HAIR_COLOURS = np.array([[0.08, 0.06, 0.05], [0.25, 0.16, 0.09], [0.45, 0.30, 0.16], [0.80, 0.66, 0.40],
                         [0.60, 0.58, 0.56]])
EYE_RADIUS = 0.012  # metres


def body_part_labels(weights: np.ndarray) -> np.ndarray:
    """The SMPL joint (N,) int that moves each vertex most: the argmax of skinning weights (N, 24),
    or of SMPL-X-format weights (N, 55) mapped to SMPL's parts (`SMPLX_TO_SMPL_PART`)."""
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] not in (24, len(SMPLX_TO_SMPL_PART)):
        raise ValueError(f"weights must be (N, 24) SMPL-format or (N, 55) SMPL-X-format skinning weights; "
                         f"got shape {weights.shape}")
    labels = weights.argmax(1)
    return labels if weights.shape[1] == 24 else SMPLX_TO_SMPL_PART[labels]


@dataclass(frozen=True)
class OutfitParts:
    """What `random_outfit` paints, read once off a body model: ``labels`` (N,) each vertex's joint,
    ``behind`` (N,) the head vertices' signed distance behind the ears (metres, > 0 behind), ``above``
    (N,) their height above the eyes (metres), ``eyes`` (N,) bool the vertices of the eyes."""

    labels: np.ndarray
    behind: np.ndarray
    above: np.ndarray
    eyes: np.ndarray


def outfit_parts(arrays: Mapping[str, np.ndarray]) -> OutfitParts:
    """`OutfitParts` of SMPL-format or SMPL-X-format body-model arrays (``v_template``, ``weights``, and
    the landmark vertices ``extra_vertex_names`` / ``extra_vertex_ids`` with ``reye``, ``leye``,
    ``rear``, ``lear``)."""
    vertices = np.asarray(arrays["v_template"], dtype=np.float64)
    names = [str(n) for n in arrays["extra_vertex_names"]]
    ids = dict(zip(names, (int(i) for i in arrays["extra_vertex_ids"])))
    missing = [n for n in ("reye", "leye", "rear", "lear") if n not in ids]
    if missing:
        raise ValueError(f"the body model's landmark vertices lack {missing}; outfits need the eyes and ears "
                         "(extra_vertex_names of the free SMPL-format model)")
    eye_points = vertices[[ids["reye"], ids["leye"]]]
    ears = vertices[[ids["rear"], ids["lear"]]].mean(0)
    eye_distance = np.linalg.norm(vertices[:, None] - eye_points[None], axis=-1).min(1)
    return OutfitParts(
        labels=body_part_labels(arrays["weights"]),
        behind=ears[2] - vertices[:, 2],
        above=vertices[:, 1] - eye_points[:, 1].mean(),
        eyes=eye_distance < EYE_RADIUS,
    )


def _cloth_colour(generator: np.random.Generator) -> np.ndarray:
    if generator.random() < 0.25:  # dark clothes are common: navy, black, charcoal
        return generator.uniform(0.05, 0.25, 3)
    return np.array(random_body_color(generator))


def random_outfit(parts: OutfitParts, generator: np.random.Generator) -> np.ndarray:
    """Per-vertex RGB colours (N, 3) float32 in [0, 1] of one randomly dressed person (module docstring)."""
    labels = parts.labels
    skin = SKIN_TONES[generator.integers(len(SKIN_TONES))] * generator.uniform(0.9, 1.1)
    colours = np.tile(skin, (len(labels), 1))
    shirt, trousers, shoes = _cloth_colour(generator), _cloth_colour(generator), generator.uniform(0.05, 0.6, 3)
    shirt_joints = TORSO + UPPER_ARMS + (FOREARMS if generator.random() < 0.5 else ())
    trouser_joints = PELVIS + THIGHS + (SHINS if generator.random() < 0.6 else ())
    colours[np.isin(labels, shirt_joints)] = shirt
    colours[np.isin(labels, trouser_joints)] = trousers
    colours[np.isin(labels, FEET)] = shoes
    head = np.isin(labels, HEAD)
    if generator.random() > 0.1:
        # the hairline: behind a plane through the ears tilted forward over the crown; long hair
        # reaches lower at the back (a lower cut below the eyes' height)
        tilt, low = generator.uniform(0.3, 1.2), generator.uniform(-0.12, 0.02)
        hair = head & ((parts.behind + tilt * (parts.above - 0.03) > 0) & (parts.above > low) | (parts.above > 0.07))
        colours[hair] = HAIR_COLOURS[generator.integers(len(HAIR_COLOURS))] * generator.uniform(0.8, 1.2)
    colours[parts.eyes] = 0.05
    return np.clip(colours, 0.0, 1.0).astype(np.float32)
