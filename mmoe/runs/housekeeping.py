"""What a store removes when it opens: the leftovers of work that was killed half-way.

    <run>/.<name>.<8 hex>.tmp     a save killed before its rename (see ``artifacts``), also in
                                  _experiments/ and the dataset shelf (datasets/<id>/, datasets/_choices/)
    .runs.sqlite.<8 hex>.tmp      an index rebuild (``runs --repair``) killed before its rename
    .deleted-<id>-<8 hex>/        a run folder whose deletion was killed half-way

Only leftovers older than ``STALE_SECONDS`` go: a file younger than that may be a save still in
progress in another process (a save rewrites its temporary file continuously, so its age is the
time since its last write). Run folders themselves are never moved or removed here.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from mmoe.runs.artifacts import is_temp_file

STALE_SECONDS = 3600.0


def _old(path: Path, now: float, age: float) -> bool:
    try:
        return now - path.lstat().st_mtime > age
    except OSError:
        return False


def _entries(folder) -> list[os.DirEntry]:
    try:
        return list(os.scandir(folder))
    except OSError:
        return []


def remove_stale_leftovers(home: Path, *, age: float = STALE_SECONDS) -> list[Path]:
    """Remove the temporary files and half-deleted folders older than ``age`` seconds in the store
    ``home`` and its run folders; returns what was removed (files a process may not remove are left)."""
    now, removed = time.time(), []
    try:
        top = list(os.scandir(home))
    except OSError:
        return removed
    candidates: list[Path] = []
    for entry in top:
        if entry.is_dir(follow_symlinks=False) and entry.name.isdigit():
            try:
                candidates += [Path(e.path) for e in os.scandir(entry.path)
                               if is_temp_file(e.name) and e.is_file(follow_symlinks=False)]
            except OSError:
                continue
        elif entry.is_dir(follow_symlinks=False) and entry.name.startswith(".deleted-"):
            candidates.append(Path(entry.path))
        elif entry.is_dir(follow_symlinks=False) and entry.name in ("_experiments", "datasets"):
            folders = [Path(entry.path)]
            if entry.name == "datasets":
                folders += [Path(e.path) for e in _entries(entry.path) if e.is_dir(follow_symlinks=False)]
            candidates += [Path(e.path) for f in folders for e in _entries(f)
                           if is_temp_file(e.name) and e.is_file(follow_symlinks=False)]
        elif is_temp_file(entry.name) and entry.is_file(follow_symlinks=False):
            candidates.append(Path(entry.path))
    for path in candidates:
        if not _old(path, now, age):
            continue
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def store_notes(store) -> list[str]:
    """What opening ``store`` did or could not do, in one line each (for the command line's stderr)."""
    notes = []
    if store.read_only:
        notes.append(f"note: the run store {store.home} is read-only: runs can be listed and scored, not trained")
    if store.removed_leftovers:
        n = len(store.removed_leftovers)
        notes.append(f"note: removed {n} stale temporary file{'s' if n != 1 else ''} left by killed saves "
                     f"in {store.home}")
    return notes
