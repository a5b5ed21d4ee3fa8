"""A run's artifact folder: its layout, the file names (one home for them), and atomic I/O.

    home/<run_id>/model.pt            weights (tensors only; loaded with weights_only=True)
    home/<run_id>/model.json          what the weights are (architecture, sizes)
    home/<run_id>/preprocessor.json   the preprocessing fitted on the training rows
    home/<run_id>/predictions.parquet the predictions frame (see ``mmoe.runs.predictions``)
    home/<run_id>/run.json            the run's record and history (see ``mmoe.runs.runfile``)

Every write goes to a temporary file beside the target (``.<name>.<8 hex>.tmp``) and is renamed into
place, so a killed save never leaves half a file under the real name; the temporary files a killed
save leaves behind are removed when a store opens (``mmoe.runs.housekeeping``). A file that exists
but cannot be read raises ``ArtifactError`` naming the file: only what needs that file fails.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any, Iterator, Mapping

import pandas as pd

from mmoe.runs.errors import ArtifactError, StoreError, one_line, plain_json
from mmoe.runs.status import ACTIVE

MODEL = "model.pt"
MODEL_META = "model.json"
PREPROCESSOR = "preprocessor.json"
PREDICTIONS = "predictions.parquet"
RUN_FILE = "run.json"
MODEL_FILES = (MODEL, MODEL_META, PREPROCESSOR)     # what a model download holds
_TEMP = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


def temp_path(path: Path) -> Path:
    """Where a save of ``path`` is written before it is renamed into place."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def is_temp_file(name: str) -> bool:
    """Is ``name`` a save in progress (or the leftover of a killed one)?"""
    return bool(_TEMP.match(name))


def damaged(path: Path, e: BaseException) -> ArtifactError:
    """The one-line error for an artifact that exists but cannot be read."""
    return ArtifactError(f"run {path.parent.name}: {path.name} in {path.parent} cannot be read ({one_line(e)}); "
                         "the file is damaged or from another version: train the run again or restore the file")


class ArtifactIO:
    """The artifact methods of ``RunStore`` (which provides ``home``, ``_status_of``, ``_con`` and
    ``get_run``)."""

    def artifact_dir(self, run_id: int) -> Path:
        """The run's artifact folder (not created until something is saved)."""
        return self.home / str(int(run_id))

    def _artifact_path(self, run_id: int, name: str, default_suffix: str = "") -> Path:
        name = str(name)
        if not name or name in (".", "..") or "/" in name or "\\" in name or name != os.path.basename(name):
            raise StoreError(f"run {run_id}: artifact name {name!r} must be a plain file name")
        if default_suffix and not Path(name).suffix:
            name += default_suffix
        return self.artifact_dir(run_id) / name

    def _writable(self, run_id: int, name: str, default_suffix: str = "") -> Path:
        self.require_writable()
        self._status_of(self._con(), run_id)
        path = self._artifact_path(run_id, name, default_suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def _atomic(self, path: Path) -> Iterator[Path]:
        """Yield a temp path beside ``path``; on success os.replace it into place."""
        tmp = temp_path(path)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _readable(self, run_id: int, name: str, default_suffix: str = "") -> Path:
        path = self._artifact_path(run_id, name, default_suffix)
        if path.is_file():
            return path
        rec = self.get_run(run_id)  # raises "run N does not exist"
        if rec.status in ACTIVE:
            why = f"the run is still {rec.status}; artifacts are written when it ends"
        elif rec.status == "finished":
            why = "it was never saved or was removed from the folder"
        else:
            why = f"the run ended as {rec.status} before saving it"
            if rec.error:
                why += f" ({rec.error})"
        raise StoreError(f"run {run_id} has no {path.name!r} in {path.parent}: {why}")

    def artifact_version(self, run_id: int, name: str) -> float | None:
        """When the artifact was last written (a cache key for readers), None when there is none."""
        path = self._artifact_path(run_id, name)
        return path.stat().st_mtime if path.is_file() else None

    def read_bytes(self, run_id: int, name: str) -> bytes:
        return self._readable(run_id, name).read_bytes()

    def has_artifact(self, run_id: int, name: str) -> bool:
        return self._artifact_path(run_id, name).is_file()

    def save_model(self, run_id: int, state_dict: Mapping[str, Any], meta: dict) -> Path:
        """Save weights (model.pt, tensors moved to CPU) and their description (model.json)."""
        import torch

        state = {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in state_dict.items()}
        path = self._writable(run_id, MODEL)
        self.save_text(run_id, MODEL_META, json.dumps(meta, default=plain_json, indent=1))
        with self._atomic(path) as tmp:
            torch.save(state, tmp)
        return path

    def load_model_state(self, run_id: int) -> tuple[dict, dict]:
        """(state_dict on CPU, meta) of a run's saved model; loads tensors only (weights_only)."""
        import torch

        path = self._readable(run_id, MODEL)
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as e:   # truncated zip, garbage, a pickled object weights_only refuses
            raise damaged(path, e) from None
        if not isinstance(state, dict):
            raise damaged(path, TypeError(f"it holds a {type(state).__name__}, not the model's weights"))
        meta_path = self._readable(run_id, MODEL_META)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise damaged(meta_path, e) from None
        if not isinstance(meta, dict):
            raise damaged(meta_path, TypeError("it is not a JSON object"))
        return state, meta

    def save_text(self, run_id: int, name: str, text: str) -> Path:
        path = self._writable(run_id, name)
        with self._atomic(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return path

    def load_text(self, run_id: int, name: str) -> str:
        path = self._readable(run_id, name)
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise damaged(path, e) from None

    def save_frame(self, run_id: int, name: str, df: pd.DataFrame) -> Path:
        """Save a DataFrame as parquet (``.parquet`` added when the name has no suffix)."""
        path = self._writable(run_id, name, ".parquet")
        # dictionary encoding only where it pays (text, categories): tried on float columns it costs
        # several times the whole write (2 s of 2.3 s for 200k rows x 116 float columns), for nothing
        coded = [str(c) for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
        with self._atomic(path) as tmp:
            df.to_parquet(tmp, use_dictionary=coded or False)
        return path

    def load_frame(self, run_id: int, name: str) -> pd.DataFrame:
        path = self._readable(run_id, name, ".parquet")
        try:
            return pd.read_parquet(path)
        except Exception as e:   # pyarrow raises its own ArrowInvalid / OSError for a damaged file
            raise damaged(path, e) from None
