"""`hmrlab.apply.export`: each file read back by an independent reader (trimesh for OBJ and GLB, the
``bvh`` package for BVH, imageio for the clips), the GLB's structure checked against the glTF 2.0
specification and its skinning replayed with numpy."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from hmrlab.apply import export, fit
from hmrlab.body.lbs import forward_kinematics, skin
from hmrlab.body.skeletons import SMPL_24
from hmrlab.data.motions import generate_motion
from hmrlab.geometry import axis_angle_to_matrix

pytestmark = pytest.mark.usefixtures("one_thread")

COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
SIZES = {5126: 4, 5125: 4, 5123: 2, 5121: 1}
DTYPES = {5126: "<f4", 5125: "<u4", 5123: "<u2", 5121: "u1"}


@pytest.fixture(scope="module")
def motion():
    generator = torch.Generator().manual_seed(0)
    clip = generate_motion("wave", generator=generator, duration=2.0)
    poses = clip.poses[::10].numpy()
    transl = clip.transl[::10].numpy() + [0.0, 0.95, 0.0]
    return fit.WorldMotion(poses, 0.3 * np.arange(10, dtype=np.float32) / 10, transl, 5.0, "test")


def read_glb(path):
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON" and json_length % 4 == 0
    document = json.loads(data[20 : 20 + json_length])
    bin_length, bin_type = struct.unpack_from("<I4s", data, 20 + json_length)
    assert bin_type == b"BIN\0" and bin_length % 4 == 0 and 28 + json_length + bin_length == len(data)
    binary = data[28 + json_length : 28 + json_length + bin_length]
    assert len(document["buffers"]) == 1 and 0 <= bin_length - document["buffers"][0]["byteLength"] < 4

    def accessor(index):
        spec = document["accessors"][index]
        view = document["bufferViews"][spec["bufferView"]]
        width = COMPONENTS[spec["type"]]
        assert view["byteOffset"] % SIZES[spec["componentType"]] == 0
        assert view["byteLength"] == spec["count"] * width * SIZES[spec["componentType"]]
        assert view["byteOffset"] + view["byteLength"] <= document["buffers"][0]["byteLength"]
        array = np.frombuffer(binary, DTYPES[spec["componentType"]], spec["count"] * width, view["byteOffset"])
        return array.reshape(spec["count"], width) if width > 1 else array

    return document, accessor


def test_glb_structure_and_skinning(tmp_path, motion):
    body = fit.fitting_body()
    path = export.write_glb(tmp_path / "motion.glb", motion, body=body)
    document, accessor = read_glb(path)
    assert document["asset"]["version"] == "2.0"
    primitive = document["meshes"][0]["primitives"][0]
    positions = accessor(primitive["attributes"]["POSITION"]).astype(np.float64)
    spec = document["accessors"][primitive["attributes"]["POSITION"]]
    np.testing.assert_allclose(spec["min"], positions.min(0), atol=1e-6)  # required by the specification
    np.testing.assert_allclose(spec["max"], positions.max(0), atol=1e-6)
    faces = accessor(primitive["indices"]).reshape(-1, 3)
    assert np.array_equal(faces, body.faces)
    joints, weights = accessor(primitive["attributes"]["JOINTS_0"]), accessor(primitive["attributes"]["WEIGHTS_0"])
    np.testing.assert_allclose(weights.sum(1), 1, atol=1e-6)
    skin_spec = document["skins"][0]
    nodes = document["nodes"]
    assert [nodes[n]["name"] for n in skin_spec["joints"]] == list(SMPL_24.joint_names)
    inverse_bind = accessor(skin_spec["inverseBindMatrices"]).reshape(24, 4, 4).transpose(0, 2, 1)  # column-major
    animation = document["animations"][0]
    times = accessor(animation["samplers"][0]["input"])
    assert document["accessors"][animation["samplers"][0]["input"]]["max"] == [pytest.approx(times[-1])]
    np.testing.assert_allclose(times, np.arange(10) / 5.0, atol=1e-6)
    tracks = {}
    for channel in animation["channels"]:
        sampler = animation["samplers"][channel["sampler"]]
        tracks[channel["target"]["node"], channel["target"]["path"]] = accessor(sampler["output"]).astype(np.float64)

    def local(node, frame):
        matrix = np.eye(4)
        x, y, z, w = tracks.get((node, "rotation"), [nodes[node]["rotation"]] * 10)[frame]
        assert np.isclose(x * x + y * y + z * z + w * w, 1, atol=1e-5)
        matrix[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                          [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                          [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
        matrix[:3, 3] = tracks.get((node, "translation"), [nodes[node]["translation"]] * 10)[frame]
        return matrix

    parent = {child: n for n, node in enumerate(nodes) for child in node.get("children", [])}
    for frame in (0, 7):
        def world(node):
            return local(node, frame) if node not in parent else world(parent[node]) @ local(node, frame)

        matrices = np.stack([world(n) for n in skin_spec["joints"]]) @ inverse_bind
        blended = np.einsum("nk,nkij->nij", weights, matrices[joints])
        replayed = np.einsum("nij,nj->ni", blended[:, :3, :3], positions) + blended[:, :3, 3]
        # hmrlab's own skinning with the same (4 strongest) weights, and with all weights
        rotmats = axis_angle_to_matrix(torch.as_tensor(motion.poses[frame : frame + 1], dtype=torch.float64))
        rest = torch.as_tensor(positions)[None]
        _, rest_joints = export._rest_skeleton(body, motion.betas)
        _, transforms = forward_kinematics(rotmats, torch.as_tensor(rest_joints)[None], body.model.parents)
        dense = np.zeros((len(positions), 24))
        np.add.at(dense, (np.arange(len(positions))[:, None], joints.astype(np.int64)), weights)
        ours = skin(rest, torch.as_tensor(dense), transforms)[0].numpy() + motion.transl[frame]
        np.testing.assert_allclose(replayed, ours, atol=2e-5)
        full = skin(rest, body.model.weights.double(), transforms)[0].numpy() + motion.transl[frame]
        assert np.linalg.norm(replayed - full, axis=-1).mean() < 0.003
    import trimesh

    scene = trimesh.load(path)
    assert sum(len(g.vertices) for g in scene.geometry.values()) == len(positions)


def test_bvh_reads_back_with_the_same_rotations(tmp_path, motion):
    from bvh import Bvh

    body = fit.fitting_body()
    path = export.write_bvh(tmp_path / "motion.bvh", motion, body=body, scale=100.0)
    mocap = Bvh(path.read_text())
    assert mocap.get_joints_names() == [SMPL_24.joint_names[j] for j in
                                        (0, 1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12, 15, 13, 16, 18, 20, 22,
                                         14, 17, 19, 21, 23)]
    assert mocap.nframes == 10 and mocap.frame_time == pytest.approx(0.2)
    _, rest_joints = export._rest_skeleton(body, motion.betas)
    np.testing.assert_allclose(mocap.joint_offset("left_knee"), 100 * (rest_joints[4] - rest_joints[1]), atol=1e-5)
    expected = axis_angle_to_matrix(torch.as_tensor(motion.poses, dtype=torch.float64)).numpy()

    def axis(name, degrees):
        c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        return {"X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
                "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[name[0]]

    for j, name in enumerate(SMPL_24.joint_names):
        channels = [c for c in mocap.joint_channels(name) if c.endswith("rotation")]
        for frame in range(10):
            values = mocap.frame_joint_channels(frame, name, channels)
            matrix = np.eye(3)
            for channel, value in zip(channels, values):  # BVH composes the channels in the order listed
                matrix = matrix @ axis(channel, value)
            np.testing.assert_allclose(matrix, expected[frame, j], atol=1e-6)
    position = mocap.frame_joint_channels(3, "pelvis", ["Xposition", "Yposition", "Zposition"])
    np.testing.assert_allclose(position, 100 * (motion.transl[3] + rest_joints[0]), atol=1e-4)


def test_obj_sequence_reads_back(tmp_path, motion):
    import trimesh

    body = fit.fitting_body()
    vertices = body.vertices(motion.poses[:2], motion.betas, motion.transl[:2])
    paths = export.write_obj_sequence(tmp_path / "meshes", vertices, body.faces, progress=False)
    assert [p.name for p in paths] == ["frame_00000.obj", "frame_00001.obj"]
    mesh = trimesh.load(paths[1], process=False)
    np.testing.assert_allclose(mesh.vertices, vertices[1], atol=1e-6)
    assert np.array_equal(mesh.faces, body.faces)


def test_clips_render_and_read_back(tmp_path, motion):
    import imageio.v2 as imageio

    body = fit.fitting_body()
    vertices = body.vertices(motion.poses[:4], motion.betas, motion.transl[:4])
    frames = export.render_ground_view(vertices, body.faces, size=(96, 72), progress=False)
    assert frames.shape == (4, 72, 96, 3) and frames.std() > 5
    mp4 = export.write_video(tmp_path / "clip.mp4", frames, 5.0, progress=False)
    reader = imageio.get_reader(mp4)
    assert reader.count_frames() == 4 and reader.get_data(0).shape == (72, 96, 3)
    reader.close()
    gif = export.write_video(tmp_path / "clip.gif", frames[:, :71], 5.0)  # odd sizes too
    assert len(imageio.mimread(gif)) == 4
    with pytest.raises(ValueError, match=".mp4 or .gif"):
        export.write_video(tmp_path / "clip.avi", frames)
    # over input frames: a body 3 m in front of the camera covers the image centre, not the corner
    camera_vertices = vertices[:1] @ fit.CAMERA_TO_WORLD.T + [0.0, 0.9, 3.0]
    background = np.full((1, 60, 80, 3), 30, dtype=np.uint8)
    overlay = export.render_overlay(background, camera_vertices, body.faces, 60.0, (39.5, 29.5))
    assert (overlay[0, 30, 40] != 30).any() and (overlay[0, 0, 0] == 30).all()
    skeleton = export.draw_skeleton(background, np.array([[[10.0, 10.0], [50.0, 40.0]]]), [(0, 1)])
    assert (skeleton[0, 25, 30] != 30).any()
