"""The ``hmrlab`` command: train and evaluate configured runs (`hmrlab.training`), and apply a lifter.

    hmrlab train CONFIG [--quick] [--set key=value ...]     # also: torchrun --nproc_per_node=N -m hmrlab train CONFIG
    hmrlab eval RUN_DIR [--which best|last] [--on 3DPW_FOLDER]
    hmrlab lift KEYPOINTS --format coco17 --size W H --run RUN_DIR --out DIR [--export glb bvh mp4 obj]

``lift`` reads a detector's output (a COCO results JSON, an OpenPose JSON folder, AlphaPose's JSON, or
a (T, J, 2|3) .npy/.csv; `hmrlab.data.detections`), lifts it with a trained lifting run, fits the body
model and writes the files of `hmrlab.apply` (see ``report.json`` in DIR for what was done).
``python -m hmrlab`` is the same command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch.distributed as dist
import yaml

from hmrlab import training

EXPORTS = ("glb", "bvh", "mp4", "gif", "obj")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hmrlab", description="Train and evaluate hmrlab models.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train as a YAML configuration says (resumes its run folder)")
    train.add_argument("config", help="a YAML file, e.g. configs/lifting_mixste.yaml")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting, e.g. --set epochs=5 --set model_args.dim=64 (repeatable)")
    train.add_argument("--quick", action="store_true", help="apply the configuration's quick settings (a few steps)")
    evaluate = commands.add_parser("eval", help="evaluate a trained run on its test split")
    evaluate.add_argument("run_dir", help="the run's out_dir (holds config.yaml and checkpoint.pt)")
    evaluate.add_argument("--which", choices=("best", "last"), default="best", help="which checkpoint (default best)")
    evaluate.add_argument("--on", metavar="FOLDER",
                          help="score on the test sequences of this 3DPW-format folder instead (the common benchmark)")
    lift = commands.add_parser("lift", help="2D keypoints of a video -> 3D joints, a fitted body and files")
    lift.add_argument("keypoints", help="COCO results .json, OpenPose JSON folder, AlphaPose .json, or .npy/.csv")
    lift.add_argument("--format", dest="layout", metavar="LAYOUT",
                      help="keypoint layout: coco17, body25, coco18, halpe26, mediapipe33, h36m17, smpl24 (needed "
                           "for .npy/.csv; COCO results default to coco17; OpenPose/AlphaPose files say theirs)")
    lift.add_argument("--size", nargs=2, type=int, required=True, metavar=("W", "H"), help="image size, pixels")
    lift.add_argument("--run", required=True, metavar="RUN_DIR", help="a trained lifting run (hmrlab train ...)")
    lift.add_argument("--out", required=True, metavar="DIR", help="folder for the results")
    lift.add_argument("--reader", default="auto", choices=("auto", "coco", "openpose", "alphapose", "array"))
    lift.add_argument("--person", default="auto", help="'auto', 'largest' or a track id (default auto)")
    lift.add_argument("--min-confidence", type=float, default=0.3, help="keypoints below count as missing")
    lift.add_argument("--max-gap", type=int, default=10, help="fill gaps of at most this many frames (default 10)")
    lift.add_argument("--focal", type=float, help="focal length in pixels (default: the image's longer side)")
    lift.add_argument("--fps", type=float, default=30.0, help="the video's frame rate (default 30)")
    lift.add_argument("--iterations", type=int, default=80, help="body-fit optimisation steps (default 80)")
    lift.add_argument("--no-shape", action="store_true", help="keep the mean body shape")
    lift.add_argument("--no-flip", action="store_true", help="lift without flip averaging")
    lift.add_argument("--export", nargs="*", default=["glb", "bvh", "mp4"], choices=EXPORTS,
                      help="files to write (default: glb bvh mp4); obj writes one mesh per frame")
    lift.add_argument("--video-size", nargs=2, type=int, default=(480, 360), metavar=("W", "H"),
                      help="size of the floor view's clip, pixels (default 480 360)")
    lift.add_argument("--frames", metavar="FOLDER",
                      help="the video's frames as images (sorted by name, the first the first detected frame "
                           "number): the clip shows the mesh over them instead of on a floor")
    return parser


def _person(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def _read_frames(folder: str, count: int, offset: int, size: tuple[int, int]):
    import numpy as np
    from PIL import Image

    images = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if len(images) < offset + count:
        raise ValueError(f"{folder} holds {len(images)} images; the detections need frames "
                         f"{offset}..{offset + count - 1}")
    frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in images[offset : offset + count]])
    if frames.shape[2:0:-1] != tuple(size):
        raise ValueError(f"{folder}: images are {frames.shape[2]}x{frames.shape[1]} pixels but --size is "
                         f"{size[0]} {size[1]}")
    return frames


def lift_command(args: argparse.Namespace) -> str:
    """``hmrlab lift``: read, lift, fit, export; returns the summary printed."""
    import numpy as np

    from hmrlab.apply import export, fit, lift
    from hmrlab.data import detections, keypoint_formats
    from hmrlab.io import atomic_save_npz, atomic_write_text

    sequence = detections.read_detections(
        args.keypoints, args.layout if args.reader in ("auto", "coco", "array") else None, reader=args.reader,
        person=_person(args.person), min_confidence=args.min_confidence, max_gap=args.max_gap)
    if args.layout is not None and keypoint_formats.get_layout(args.layout) != sequence.layout:
        raise ValueError(f"{args.keypoints} holds {sequence.layout.name} keypoints, not --format {args.layout}; "
                         f"drop --format or pass the file's layout")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size = tuple(args.size)
    lifted = lift.lift_detections(sequence, lift.load_lifter(args.run), size, focal=args.focal, flip=not args.no_flip)
    body = fit.fitting_body()
    fitted = fit.fit_body(lifted.joints, lifted.trajectory, body=body, fit_shape=not args.no_shape,
                          iterations=args.iterations)
    world = fit.to_world(fitted, args.fps, body=body)
    atomic_save_npz(out / "keypoints_h36m.npz", keypoints=lifted.keypoints, origin=lifted.origin,
                    frame_ids=lifted.frame_ids)
    atomic_save_npz(out / "joints_camera.npz", joints=lifted.joints, trajectory=lifted.trajectory,
                    fitted_joints=fitted.joints)
    atomic_save_npz(out / "body_camera.npz", poses=fitted.poses, betas=fitted.betas, transl=fitted.transl)
    atomic_save_npz(out / "body_world.npz", poses=world.poses, betas=world.betas, transl=world.transl,
                    fps=np.float64(world.fps))
    written, seconds = ["keypoints_h36m.npz", "joints_camera.npz", "body_camera.npz", "body_world.npz"], {}
    exports = dict.fromkeys(args.export)
    start = time.perf_counter()
    if "glb" in exports:
        written.append(export.write_glb(out / "motion.glb", world, body=body).name)
    if "bvh" in exports:
        written.append(export.write_bvh(out / "motion.bvh", world, body=body).name)
    seconds["glb_bvh"] = time.perf_counter() - start
    if "obj" in exports:
        start = time.perf_counter()
        vertices = body.vertices(world.poses, world.betas, world.transl)
        export.write_obj_sequence(out / "meshes", vertices, body.faces)
        written.append("meshes/")
        seconds["obj"] = time.perf_counter() - start
    for kind in ("mp4", "gif"):
        if kind not in exports:
            continue
        start = time.perf_counter()
        if args.frames:
            offset = int(lifted.frame_ids[0] - sequence.frame_ids[0])
            images = _read_frames(args.frames, len(lifted.frame_ids), offset, size)
            camera_vertices = body.vertices(fitted.poses, fitted.betas, fitted.transl)
            clip = export.render_overlay(images, camera_vertices, body.faces, lifted.focal, lifted.center)
        else:
            clip = export.render_ground_view(body.vertices(world.poses, world.betas, world.transl), body.faces,
                                             size=tuple(args.video_size))
        written.append(export.write_video(out / f"render.{kind}", clip, args.fps).name)
        seconds[kind] = time.perf_counter() - start
    frames = len(lifted.joints)
    report = {
        "detections": sequence.report.to_dict(),
        "frames_lifted": [int(lifted.frame_ids[0]), int(lifted.frame_ids[-1])],
        "image_size": list(size), "focal_px": lifted.focal, "fps": args.fps,
        "seconds_per_frame": {"lift": lifted.seconds_per_frame, "fit": fitted.seconds_per_frame,
                              **{k: v / frames for k, v in seconds.items()}},
        "fit": {"joint_error_ik_mm": float(fitted.error_ik_mm.mean()), "joint_error_mm": float(fitted.error_mm.mean()),
                "iterations": fitted.iterations, "shape_fitted": not args.no_shape},
        "coordinates": {
            "camera": "joints_camera.npz, body_camera.npz: OpenCV camera frame (x right, y down, z forward), metres; "
                      "joints root-relative (pelvis at 0), trajectory the pelvis' position",
            "world": f"body_world.npz, motion.glb, motion.bvh: y up, metres; {world.frame}",
        },
        "files": written,
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=1))
    return "\n".join([
        str(sequence.report),
        f"lifted frames {lifted.frame_ids[0]}-{lifted.frame_ids[-1]} ({frames}): "
        f"{1000 * lifted.seconds_per_frame:.2f} ms per frame",
        f"body fit: {fitted.summary()}",
        f"wrote {', '.join(written)} and report.json to {out}",
    ])


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            history = training.train(training.load_config(args.config, args.overrides, quick=args.quick))
            if not dist.is_initialized() or dist.get_rank() == 0:
                print(history.to_frame().to_string(index=False))
        elif args.command == "lift":
            print(lift_command(args))
        elif args.on is not None:
            print(training.benchmark(args.run_dir, args.on, which=args.which).round(2).to_string())
        else:
            print(training.evaluate(args.run_dir, which=args.which).round(2).to_string())
    except yaml.YAMLError as error:
        print(f"hmrlab {args.command}: not a valid YAML file: {error}", file=sys.stderr)
        return 2
    # ValueError and FileNotFoundError: bad settings or files; other OSErrors: a file that exists but
    # cannot be read or written (permissions, full disk); FloatingPointError: the loss became NaN/inf.
    except (ValueError, OSError, FloatingPointError) as error:
        print(f"hmrlab {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:  # fit saved the partial epoch and says how to resume
        print(f"hmrlab {args.command}: {error or 'interrupted'}", file=sys.stderr)
        return 130
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
