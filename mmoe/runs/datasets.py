"""The dataset shelf of a run store: uploaded tables kept on disk, content-addressed and deduplicated,
so a browser refresh, a new tab or a restart finds them again (nothing is held per browser session).

    home/datasets/<id>/data        the bytes as uploaded (id: the first 16 hex digits of their SHA-256)
    home/datasets/<id>/meta.json   name, size, when added and last used, how it was read
    home/datasets/_choices/<k>.json  the Data and Train page choices last made for a dataset key

A run records the id of the table it trained on (``data_summary["source"]["dataset_id"]``, the same
id for the same bytes whether they came from the dashboard or from ``python -m mmoe train``), so
deleting a dataset can say which runs used it. Every write is atomic (a temporary file renamed).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mmoe.data.reading import content_id as dataset_id
from mmoe.runs.errors import StoreError

ID_DIGITS = 16


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {path}: {e.strerror or e}; free some space or choose another store") from None


@dataclass(frozen=True)
class DatasetEntry:
    id: str
    name: str
    bytes: int
    added_at: str
    used_at: str
    read: dict          # the reader's report (delimiter, encoding, ...) once the table was read

    @property
    def key(self) -> str:
        """The Data page's key for it (its widgets and saved choices are keyed by this)."""
        return f"dataset:{self.id}"


class DatasetShelf:
    def __init__(self, home: str | os.PathLike):
        self.root = Path(home) / "datasets"

    def _dir(self, ds_id: str) -> Path:
        if not (isinstance(ds_id, str) and len(ds_id) == ID_DIGITS and all(c in "0123456789abcdef" for c in ds_id)):
            raise StoreError(f"{ds_id!r} is not a dataset id (16 hex digits)")
        return self.root / ds_id

    def add(self, data: bytes, name: str) -> DatasetEntry:
        """Keep ``data`` (once: the same bytes again only refresh the entry) and return its entry."""
        ds_id = dataset_id(data)
        folder = self._dir(ds_id)
        meta_path = folder / "meta.json"
        if meta_path.exists():
            entry = self.get(ds_id)
            return self._save_meta(entry, used_at=_now(), name=str(name) or entry.name)
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(folder / "data", bytes(data))
        now = _now()
        return self._save_meta(DatasetEntry(ds_id, str(name), len(data), now, now, {}))

    def _save_meta(self, entry: DatasetEntry, **changes: Any) -> DatasetEntry:
        d = {**entry.__dict__, **changes}
        _write_atomic(self._dir(entry.id) / "meta.json", json.dumps(d, default=str).encode())
        return DatasetEntry(**d)

    def get(self, ds_id: str) -> DatasetEntry:
        path = self._dir(ds_id) / "meta.json"
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            return DatasetEntry(**{k: d[k] for k in DatasetEntry.__dataclass_fields__})
        except FileNotFoundError:
            raise StoreError(f"dataset {ds_id} is not in {self.root} (deleted?); upload the file again") from None
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"{path} is unreadable ({e}); delete the folder {path.parent} and upload again") from None

    def exists(self, ds_id: str) -> bool:
        try:
            return (self._dir(ds_id) / "meta.json").exists()
        except StoreError:
            return False

    def data_file(self, ds_id: str) -> Path:
        """Where the kept table's bytes are (as uploaded; the command line reads it like the upload)."""
        return self._dir(ds_id) / "data"

    def read_bytes(self, ds_id: str) -> bytes:
        try:
            return (self._dir(ds_id) / "data").read_bytes()
        except OSError as e:
            raise StoreError(f"dataset {ds_id}: cannot read its data ({e.strerror or e})") from None

    def touch(self, ds_id: str, read: dict | None = None) -> DatasetEntry:
        """Mark it used now (and keep how it was read)."""
        entry = self.get(ds_id)
        return self._save_meta(entry, used_at=_now(), read=dict(read) if read is not None else entry.read)

    def list(self) -> list[DatasetEntry]:
        """Every kept dataset, the most recently used first (unreadable entries are skipped)."""
        out = []
        if self.root.exists():
            for folder in self.root.iterdir():
                if folder.is_dir() and not folder.name.startswith("_"):
                    try:
                        out.append(self.get(folder.name))
                    except StoreError:
                        continue
        return sorted(out, key=lambda e: e.used_at, reverse=True)

    def delete(self, ds_id: str) -> None:
        folder = self._dir(ds_id)
        if folder.exists():
            trash = self.root / f".deleted-{ds_id}-{uuid.uuid4().hex[:8]}"
            os.replace(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)
        self._choices_path(f"dataset:{ds_id}").unlink(missing_ok=True)

    # -- the choices made for a dataset (any Data page key: dataset:<id>, builtin:<file>, synthetic:...) --

    def _choices_path(self, key: str) -> Path:
        return self.root / "_choices" / f"{hashlib.sha1(str(key).encode()).hexdigest()[:16]}.json"

    def save_choices(self, key: str, choices: dict) -> None:
        path = self._choices_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, json.dumps({"key": key, **choices}, default=str).encode())

    def choices(self, key: str) -> dict:
        try:
            d = json.loads(self._choices_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return d if d.get("key") == key else {}


def runs_using(store, ds_id: str) -> list:
    """The stored runs (``RunRecord``) that trained on dataset ``ds_id``."""
    return [r for r in store.list_runs()
            if ((r.data_summary or {}).get("source") or {}).get("dataset_id") == ds_id]
