"""The spectrum files a spectra cube is made from, listed once and kept on disk, a chunk at a time.

``cube.build_spectra_cube`` takes any iterable of paths (a generator over half a million files),
and needs them twice: first to tell whether an existing cube is up to date (a digest of every
file's path, size and modification time), then to read them. ``list_files`` makes the one pass,
saving the paths in a temporary file a chunk at a time (``spilled_chunks`` reads them back), so
that memory holds one chunk's paths whatever the survey's size; ``spectrum_ids`` takes each
file's rave_obs_id from its name.
"""

import hashlib
import os
import stat as stat_mode
from pathlib import Path

import numpy as np

from .files import where
from .rave import rave_obs_id_from_path


def list_files(spectrum_paths, chunk, part_seed, cube_seed, spill):
    """One pass over the spectrum files (each ``stat``-ed once), their paths saved in the open file
    ``spill`` (``np.save``, one bytes array per chunk of ``chunk`` files). Returns their number, the
    SHA-1 of ``cube_seed`` and each file's path, size and modification time (what the cube is made
    from), and that of ``part_seed`` and the files of each chunk (12 hex digits: the name of its
    saved part). FileNotFoundError names a missing file (up front, not hours into a run)."""
    sources = hashlib.sha1(cube_seed)
    block, parts, absent, n = [], [], [], 0  # absent: the first missing file and then one None per other
    for p in spectrum_paths:
        p = Path(p)
        try:
            stat = p.stat()
        except OSError:
            stat = None
        if stat is None or not stat_mode.S_ISREG(stat.st_mode):
            absent.append(None if absent else p)
            continue
        if n % chunk == 0:
            parts.append(hashlib.sha1(part_seed))
        line = f"{p.absolute()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode()
        sources.update(line)
        parts[-1].update(line)
        block.append(os.fsencode(p))
        n += 1
        if len(block) == chunk:
            np.save(spill, np.array(block, dtype=bytes))
            block = []
    if block:
        np.save(spill, np.array(block, dtype=bytes))
    if absent:
        raise FileNotFoundError(f"{len(absent)} RAVE spectrum file(s) not found, e.g. {where(absent[0])}")
    return n, sources.hexdigest(), [d.hexdigest()[:12] for d in parts]


def spilled_chunks(spill, count):
    """The ``count`` chunks of paths (bytes arrays) that ``list_files`` saved in ``spill``."""
    spill.seek(0)
    return (np.load(spill) for _ in range(count))


def spectrum_ids(spill, count, out_path):
    """The rave_obs_id (bytes) of every file in ``spill``, from its name; ValueError naming
    ``out_path`` (the cube) if two files share one."""
    ids = np.concatenate([np.array([os.fsencode(rave_obs_id_from_path(os.fsdecode(p))) for p in paths], dtype=bytes)
                          for paths in spilled_chunks(spill, count)])
    ordered = np.sort(ids)
    same = ordered[1:] == ordered[:-1]
    if np.any(same):
        raise ValueError(f"{out_path}: several files share a rave_obs_id, e.g. "
                         f"{[os.fsdecode(i) for i in np.unique(ordered[1:][same])[:3]]}")
    return ids
