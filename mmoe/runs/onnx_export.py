"""A stored run's model as an ONNX graph, and scoring through onnxruntime (``predict --backend onnx``).

The graph (what a consumer of ``model.onnx`` relies on; b, the batch dimension, is dynamic):

    inputs   x_num        float32 [b, n_numeric]      numeric features, encoded as the preprocessing says
             x_cat        int64   [b, n_categorical]  category codes from the preprocessing's vocabularies
    outputs  raw:<task>   float32 [b, d]              the model's raw output, one per task in the run's
                                                      order: a logit (binary, d=1), a standardised value
                                                      (regression, d=1; times std plus mean from the
                                                      preprocessing), C logits (multiclass)
             gate:<task>  float32 [b, e]              (with gates) the weight the task's gate gives each
                                                      expert, rows sum to 1; absent for Shared-Bottom

The preprocessing that makes x_num and x_cat from a table (the run's preprocessor.json, loadable with
``mmoe.data.Preprocessor.from_json``) is written beside the graph as ``<name>.preprocessor.json``; the
graph's metadata (``mmoe.tasks``) names each task's kind, classes and scale.

Export is generic over every ``TabularModel``: ``FlatOutputs`` wraps the model's ``forward(x_num, x_cat)
-> ModelOutput`` into a tuple of tensors, and ``torch.onnx.export(dynamo=True)`` (torch.export, then
ONNX Script) captures it. The TorchScript exporter (``dynamo=False``) is not used: it bakes the sizes of
sparse top-k routing (rows per expert) into the graph, which then fails or is wrong on other batches.
Every export is checked before it is written: onnxruntime scores two batches of seeded random rows (of
two sizes) and must agree with the torch model within ``TOLERANCE``, otherwise nothing is written.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mmoe.data import Preprocessor
from mmoe.nn import TabularModel
from mmoe.runs.errors import StoreError, one_line
from mmoe.runs.extras import require

INPUTS = ("x_num", "x_cat")
TOLERANCE = 1e-4          # |onnx - torch| <= TOLERANCE * (1 + |torch|) on the check rows, or no export
CHECK_ROWS = (5, 11)      # the two batch sizes scored by both to check the graph (not 0 or 1: torch.export
                          # specialises those)
PREPROCESSOR_SUFFIX = ".preprocessor.json"


class ExportError(StoreError):
    """The model could not be exported, or the file could not be written; the message says why."""


def raw_output(task: str) -> str:
    return f"raw:{task}"


def gate_output(task: str) -> str:
    return f"gate:{task}"


def preprocessor_path(out: Path) -> Path:
    """Where the preprocessing goes beside ``out``: model.onnx -> model.preprocessor.json."""
    out = Path(out)
    return out.with_name((out.name[:-len(out.suffix)] if out.suffix else out.name) + PREPROCESSOR_SUFFIX)


class FlatOutputs(nn.Module):
    """``model``'s ``ModelOutput`` as a flat tuple: each task's raw output [b, d], in ``task_names`` order,
    then (``gates``, when the model has gates) each task's gate weights [b, e]."""

    def __init__(self, model: TabularModel, gates: bool):
        super().__init__()
        self.model, self.tasks, self.gates = model, list(model.task_names), gates

    def forward(self, x_num: Tensor, x_cat: Tensor) -> tuple[Tensor, ...]:
        out = self.model(x_num, x_cat)
        flat = [out.preds[t] for t in self.tasks]
        if self.gates and out.gates is not None:
            flat.extend(out.gates.unbind(0))                                   # t x [b, e]
        return tuple(flat)


def example_inputs(model: TabularModel, rows: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``rows`` seeded random rows the model accepts: x_num [rows, n] normal, x_cat [rows, c] valid codes."""
    g = torch.Generator().manual_seed(seed)
    meta = model.meta
    x_num = torch.randn(rows, int(meta["num_numeric"]), generator=g)
    cards = [int(c) for c in meta["cardinalities"]]
    cols = [torch.randint(0, max(c, 1), (rows,), generator=g) for c in cards]
    x_cat = torch.stack(cols, 1) if cols else torch.zeros(rows, 0, dtype=torch.long)
    return x_num, x_cat


def has_gates(model: TabularModel) -> bool:
    with torch.no_grad():
        return model(*example_inputs(model, 2)).gates is not None


@contextlib.contextmanager
def _quiet():
    """The exporter's progress lines, warnings and log records are not the user's business (an error
    still raises); restored afterwards."""
    names = ("torch", "torch.onnx", "torch.export", "torch.fx", "torch._dynamo", "torch.fx.experimental.symbolic_shapes",
             "onnxscript", "onnx_ir")
    levels = {n: logging.getLogger(n).level for n in names}
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


@dataclass
class OnnxGraph:
    """An exported graph in memory, and what was checked."""

    data: bytes
    outputs: list[str]
    gates: bool
    max_difference: float                 # the largest |onnx - torch| over the check rows
    input_shapes: dict[str, list] = field(default_factory=dict)


def _metadata(model: TabularModel, pre: Preprocessor | None, run_id: int | None) -> dict[str, str]:
    tasks = []
    for t in model.task_names:
        entry = {"name": t, "output": raw_output(t), "width": int(model.meta["task_dims"][t])}
        if pre is not None:
            spec = next(s for s in pre.tasks if s.column == t)
            entry["kind"] = spec.kind
            if spec.kind == "multiclass":
                entry["classes"] = [str(c) for c in pre.class_labels(t)]
            if spec.kind == "regression":
                entry["scale"] = [float(v) for v in pre.target_scale(t)]
        tasks.append(entry)
    meta = {"mmoe.tasks": json.dumps(tasks), "mmoe.inputs": json.dumps(list(INPUTS)),
            "mmoe.arch": str(model.meta.get("model_config", {}).get("arch", ""))}
    if run_id is not None:
        meta["mmoe.run_id"] = str(run_id)
    return meta


def export_graph(model: TabularModel, *, gates: bool = True, pre: Preprocessor | None = None,
                 run_id: int | None = None) -> OnnxGraph:
    """``model`` (eval mode, CPU) as ONNX bytes, checked against torch on seeded rows (see the module
    docstring). ``gates``: add the gate outputs when the model has gates. Raises ``ExportError``."""
    require("onnx", "ONNX export")
    import onnxruntime as ort

    model = model.cpu().eval()
    gates = gates and has_gates(model)
    flat = FlatOutputs(model, gates).eval()
    outputs = [raw_output(t) for t in flat.tasks] + ([gate_output(t) for t in flat.tasks] if gates else [])
    batch = torch.export.Dim("batch")
    example = example_inputs(model, CHECK_ROWS[0])
    arch = model.meta.get("model_config", {}).get("arch", "model")
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(flat, example, input_names=list(INPUTS), output_names=outputs,
                                        dynamo=True, dynamic_shapes=({0: batch}, {0: batch}), verbose=False)
        proto = program.model_proto
        for k, v in _metadata(model, pre, run_id).items():
            proto.metadata_props.add(key=k, value=v)
        data = proto.SerializeToString()
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:   # the exporter's own errors are many and long: one line, what failed
        raise ExportError(f"the {arch} model could not be exported to ONNX ({type(e).__name__}: {one_line(e)})") \
            from None
    worst = 0.0
    for seed, rows in enumerate(CHECK_ROWS):
        xn, xc = example_inputs(model, rows, seed=seed + 1)
        with torch.no_grad():
            want = [t.float().numpy() for t in flat(xn, xc)]
        got = session.run(outputs, {INPUTS[0]: xn.numpy(), INPUTS[1]: xc.numpy()})
        for name, w, g in zip(outputs, want, got):
            if g.shape != w.shape or not np.allclose(g, w, rtol=TOLERANCE, atol=TOLERANCE, equal_nan=True):
                diff = float(np.nanmax(np.abs(g - w))) if g.shape == w.shape else float("inf")
                raise ExportError(f"the ONNX graph of the {arch} model disagrees with it on {name} "
                                  f"(largest difference {diff:.3g} on {rows} check rows): not exported")
            if w.size:
                worst = max(worst, float(np.nanmax(np.abs(g - w))))
    shapes = {i.name: [d if isinstance(d, int) else str(d) for d in i.shape] for i in session.get_inputs()}
    return OnnxGraph(data, outputs, gates, worst, shapes)


def onnx_predict(model: TabularModel, x_num: Tensor, x_cat: Tensor, *, batch_size: int = 65536,
                 pre: Preprocessor | None = None) -> tuple[dict[str, Tensor], Tensor | None]:
    """What ``mmoe.training.predict`` returns (raw outputs per task [n, d], gates [t, n, e] or None), computed
    by onnxruntime on ``model``'s exported graph: the ``onnx`` backend of ``predict_frame``."""
    require("onnx", "The onnx backend")
    import onnxruntime as ort

    graph = export_graph(model, gates=True, pre=pre)
    session = ort.InferenceSession(graph.data, providers=["CPUExecutionProvider"])
    tasks = list(model.task_names)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in graph.outputs}
    xn, xc = x_num.float().numpy(), x_cat.long().numpy()
    for s in range(0, max(len(xn), 1), batch_size):
        if len(xn) == 0:
            break
        got = session.run(graph.outputs, {INPUTS[0]: xn[s:s + batch_size], INPUTS[1]: xc[s:s + batch_size]})
        for name, value in zip(graph.outputs, got):
            parts[name].append(value)
    dims = model.meta["task_dims"]

    def cat(name: str, width: int) -> Tensor:
        return torch.from_numpy(np.concatenate(parts[name])) if parts[name] else torch.empty(0, width)

    raw = {t: cat(raw_output(t), int(dims[t])) for t in tasks}
    gates = torch.stack([cat(gate_output(t), model.num_experts) for t in tasks]) if graph.gates else None
    return raw, gates


# ----------------------------------------------------------------------------- files

def _target(out) -> Path:
    """``out`` checked before the (slow) export: a file name in an existing folder this process can write."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise ExportError(f"--out {out}: is a folder; give a file name, e.g. {out / 'model.onnx'}")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"--out {out}: the folder {folder} does not exist; create it or give another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ExportError(f"--out {out}: cannot write in {folder} ({e.strerror or one_line(e)}); "
                          "give a folder you may write") from None
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    """``data`` to a temporary file beside ``path``, renamed over it: an existing file is replaced whole."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ExportError(f"cannot write {path} ({e.strerror or one_line(e)})") from None


@dataclass
class OnnxExport:
    """What ``export_onnx`` wrote."""

    run_id: int
    path: Path
    preprocessor: Path
    inputs: dict[str, list]
    outputs: list[str]
    gates: bool
    replaced: list[Path]                 # files that existed and were replaced (atomically)
    max_difference: float
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        kinds = {INPUTS[0]: "float32", INPUTS[1]: "int64"}
        shapes = ", ".join(f"{k} {kinds.get(k, '')} [{', '.join(map(str, v))}]" for k, v in self.inputs.items())
        out = [f"wrote run {self.run_id}'s model to {self.path} (ONNX; inputs {shapes}, batch dimension dynamic; "
               f"outputs {', '.join(self.outputs)})",
               f"wrote its preprocessing to {self.preprocessor} (mmoe.data.Preprocessor.from_json reads it)",
               f"checked with onnxruntime: largest difference from the torch model {self.max_difference:.2g}"]
        if self.replaced:
            out.append("replaced the existing " + " and ".join(str(p) for p in self.replaced)
                       + " (written to a temporary file, then renamed over it)")
        return out + self.notes

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "format": "onnx", "out": str(self.path),
                "preprocessor": str(self.preprocessor), "inputs": self.inputs, "outputs": self.outputs,
                "gates": self.gates, "replaced": [str(p) for p in self.replaced],
                "max_difference": self.max_difference, "notes": self.notes, "status": "finished"}


def _load(store, run_id: int):
    from mmoe.runs.artifacts import PREPROCESSOR
    from mmoe.runs.runner import load_run

    model, pre = load_run(store, run_id)
    return model, pre, store.load_text(run_id, PREPROCESSOR)


def export_onnx(store, run_id: int, out, *, gates: bool = False) -> OnnxExport:
    """Write run ``run_id``'s model to ``out`` as ONNX and its preprocessing beside it; both replace an
    existing file atomically. Raises ``ExportError`` / ``StoreError`` (no such run, no saved model) /
    ``MissingExtra``, each one line."""
    require("onnx", "ONNX export")
    out = _target(out)
    model, pre, pre_text = _load(store, run_id)
    graph = export_graph(model, gates=gates, pre=pre, run_id=run_id)
    side = preprocessor_path(out)
    replaced = [p for p in (out, side) if p.exists()]
    _write_atomic(out, graph.data)
    _write_atomic(side, pre_text.encode("utf-8"))
    notes = ["the model has no gates (Shared-Bottom): no gate outputs"] if gates and not graph.gates else []
    return OnnxExport(run_id, out, side, graph.input_shapes, graph.outputs, graph.gates, replaced,
                      graph.max_difference, notes)


def onnx_archive(store, run_id: int, *, gates: bool = True) -> bytes:
    """model.onnx + model.preprocessor.json of a run, zipped (the dashboard's download)."""
    model, pre, pre_text = _load(store, run_id)
    graph = export_graph(model, gates=gates, pre=pre, run_id=run_id)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("model.onnx", graph.data)
        z.writestr(preprocessor_path(Path("model.onnx")).name, pre_text)
    return buf.getvalue()
