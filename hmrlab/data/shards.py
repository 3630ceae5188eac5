"""Generated sets in npz shards: what SynthCrops (`hmrlab.data.synth_crops`) and SynthClips
(`hmrlab.data.synth_clips`) share.

A set of ``count`` samples is cut into shards of ``shard_size`` (the last one shorter). Shard k is
made by a *worker* (an object with ``shard(config, k, n) -> {name: array}``) and written atomically
once complete, so an interrupted generation keeps the shards it finished and the next call makes only
the others; ``manifest.json`` (written last) lists the config and the shards. A shard depends only on
the config without ``count`` (its *family*, hashed into its name ``shard_<family>_<k>.npz``) and k, so
asking for more samples keeps the shards made; a last shard of fewer samples belongs to its count
only, its size joining its name's family.

Workers run in fresh processes (spawn): a process forked after this one drew with VTK hangs in EGL.
Each process builds its worker once (the body model, an open render window) and keeps it for every
shard it makes. A script calling `generate_shards` with ``workers > 1`` needs the
``if __name__ == "__main__":`` guard, as with any spawn.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from hmrlab.data.synth import MANIFEST, config_hash
from hmrlab.io import atomic_save_npz, atomic_write_text, read_json, read_npz

__all__ = ["ShardWorker", "generate_shards", "load_shards", "shard_counts", "shard_name", "shard_worker"]


class ShardWorker(Protocol):
    """What makes shards in a process: ``shard(config, index, count)``, the arrays of shard ``index``
    (``count`` samples, the first axis of every array) of a set's ``config``."""

    def shard(self, config: dict[str, Any], index: int, count: int) -> dict[str, np.ndarray]: ...


def shard_name(family: str, index: int) -> str:
    """The file name of shard ``index`` of a config family (its `config_hash`)."""
    return f"shard_{family[:12]}_{index:05d}.npz"


def shard_counts(count: int, shard_size: int) -> list[int]:
    """Samples per shard: ``shard_size`` each, the last one the remainder."""
    return [min(shard_size, count - start) for start in range(0, count, shard_size)]


_WORKERS: dict[Callable[[], ShardWorker], ShardWorker] = {}  # this process' workers, by factory


def shard_worker(factory: Callable[[], ShardWorker]) -> ShardWorker:
    """This process' worker made by ``factory``, built on first use and kept (one render window each)."""
    if factory not in _WORKERS:
        _WORKERS[factory] = factory()
    return _WORKERS[factory]


def _make_shard(factory: Callable[[], ShardWorker], config: dict[str, Any], index: int, count: int,
                path: str) -> int:
    """Make shard ``index`` in this process and write it atomically to ``path``; returns its sample count."""
    atomic_save_npz(path, **shard_worker(factory).shard(config, index, count))
    return count


def generate_shards(
    out_dir: str | os.PathLike,
    family_config: dict[str, Any],
    *,
    count: int,
    shard_size: int,
    worker: Callable[[], ShardWorker],
    workers: int,
    progress: bool,
    desc: str,
    unit: str = "sample",
) -> Path:
    """Make the ``count`` samples of a set in shards under ``out_dir`` (module docstring); returns it.

    family_config: the set's config without its count (JSON-able; it hashes into the shard names and,
    with ``count``, into the manifest); worker: a picklable factory (a module-level class) of the
    `ShardWorker` that makes the shards, built once per process; workers: processes (1: this
    process); desc, unit: the progress bar's labels. Shards already present are kept; a manifest of
    the same config with all its shards means nothing is made. Other shards in the folder are deleted.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer; got {count!r}")
    if shard_size < 1 or workers < 1:
        raise ValueError(f"shard_size and workers must be at least 1; got {shard_size}, {workers}")
    family = config_hash(family_config)
    config = {**family_config, "count": count}
    counts = shard_counts(count, shard_size)
    names = [shard_name(family if n == shard_size else config_hash({**family_config, "last": n}), k)
             for k, n in enumerate(counts)]
    out_dir = Path(out_dir)
    try:
        manifest = read_json(out_dir / MANIFEST, f"{desc} manifest")
    except (OSError, ValueError):
        manifest = None
    if (isinstance(manifest, dict) and manifest.get("config_hash") == config_hash(config)
            and all((out_dir / name).is_file() for name in names)):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)  # no stale manifest may vouch for a half-made set
    for stale in out_dir.glob("shard_*.npz"):
        if stale.name not in names:
            stale.unlink()
    todo = [(k, n, str(out_dir / name)) for k, (n, name) in enumerate(zip(counts, names))
            if not (out_dir / name).is_file()]
    done = count - sum(n for _, n, _ in todo)
    with tqdm(total=count, initial=done, desc=desc, unit=unit, disable=not progress) as bar:
        if workers == 1 or len(todo) <= 1:
            for k, n, path in todo:
                bar.update(_make_shard(worker, config, k, n, path))
        else:
            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=get_context("spawn"),
                                     initializer=shard_worker, initargs=(worker,)) as pool:
                futures = [pool.submit(_make_shard, worker, config, k, n, path) for k, n, path in todo]
                try:
                    for future in as_completed(futures):
                        bar.update(future.result())
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    manifest = {"config": config, "config_hash": config_hash(config), "shards": names}
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=1))
    return out_dir


def load_shards(folder: str | os.PathLike, members: Sequence[str], desc: str,
                make: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The config and the concatenated shard arrays (``members``) of a complete set in ``folder``.

    desc: the set's name in messages ("SynthCrops"); make: the function that makes the set (e.g.
    ``"hmrlab.data.synth_crops.generate_crops"``), named when the folder has no manifest. Raises
    FileNotFoundError without a manifest, ValueError when the shards lack a member or hold another
    count than the manifest's.
    """
    folder = Path(folder).expanduser()
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(f"{folder / MANIFEST} does not exist; make the set with "
                                f"{make}({str(folder)!r}, count=...) (an unfinished one resumes)")
    manifest = read_json(folder / MANIFEST, f"{desc} manifest")
    shards = [read_npz(folder / name, f"{desc} shard") for name in manifest["shards"]]
    missing = [name for name in members if any(name not in shard for shard in shards)]
    if missing:
        raise ValueError(f"the shards of {folder} lack {missing}; generate the set again (delete the folder)")
    arrays = {name: np.concatenate([shard[name] for shard in shards]) for name in members}
    if len(arrays[members[0]]) != manifest["config"]["count"]:
        raise ValueError(f"{folder} holds {len(arrays[members[0]])} samples, its manifest says "
                         f"{manifest['config']['count']}; generate the set again")
    return manifest["config"], arrays
