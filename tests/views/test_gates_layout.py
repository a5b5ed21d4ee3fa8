"""Gate views of CGC / PLE runs: who owns each expert (labels s0.. and <task>:t0..), utilisation over the
experts a task's gate sees, entropy and similarity staying correct on the zero weights, and the charts
marking shared and task experts."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from mmoe import PLE
from mmoe import views as A
from mmoe.config import ModelConfig
from mmoe.runs.predictions import gate_col
from mmoe.views.gates import SHARED, ExpertLayout, expert_layout

TASKS = ["click", "kind"]


def _ple_frame(n: int = 64) -> tuple[pd.DataFrame, ModelConfig]:
    """A predictions frame with the gates of a real PLE (2 shared + 2 per task, 2 tasks)."""
    torch.manual_seed(0)
    mc = ModelConfig(arch="ple", shared_experts=2, task_experts=2)
    model = PLE(5, {t: 1 for t in TASKS}, shared_experts=2, task_experts=2, levels=2, expert_hidden=(8,))
    g = model(torch.randn(n, 5)).gates.detach().numpy()                       # [t, n, e]
    cols = {gate_col(t, j): g[i, :, j] for i, t in enumerate(TASKS) for j in range(g.shape[2])}
    return pd.DataFrame(cols), mc


def test_layout_labels_groups_and_visibility():
    lay = expert_layout(ModelConfig(arch="cgc", shared_experts=2, task_experts=2), TASKS)
    assert lay.layered and lay.n_experts == 6
    assert lay.labels() == ["s0", "s1", "click:t0", "click:t1", "kind:t0", "kind:t1"]
    assert lay.groups() == [SHARED, SHARED, "click", "click", "kind", "kind"]
    assert lay.visible("click") == [0, 1, 2, 3] and lay.visible("kind") == [0, 1, 4, 5]
    assert lay.n_visible("kind") == 4 and lay.n_visible() == 4
    assert lay.caption().startswith("s0–s1: shared experts, seen by every task's gate; click:t0–click:t1: click's own")
    mmoe = expert_layout({"arch": "mmoe", "num_experts": 3}, TASKS)
    assert not mmoe.layered and mmoe.labels() == ["e0", "e1", "e2"] and mmoe.visible("kind") == [0, 1, 2]
    assert mmoe.caption() == ""


def test_a_layout_that_does_not_fit_the_stored_columns_falls_back_to_plain_experts():
    assert expert_layout({"arch": "ple", "shared_experts": 2}, TASKS, n_experts=5).labels() == [
        f"e{i}" for i in range(5)]
    assert expert_layout({"arch": "no such arch"}, TASKS, n_experts=3) == ExpertLayout((None,) * 3)
    assert expert_layout(None, TASKS, n_experts=2).n_experts == 2


def test_utilisation_covers_only_the_experts_a_gate_sees():
    frame, mc = _ple_frame()
    lay = expert_layout(mc, TASKS, n_experts=6)
    u = A.utilisation(frame, layout=lay)
    assert list(u.columns) == ["task", "expert", "weight", "share_dominant", "group"]
    click = u[u.task == "click"]
    assert list(click["expert"]) == ["s0", "s1", "click:t0", "click:t1"]
    assert list(click["group"]) == [SHARED, SHARED, "click", "click"]
    for _, d in u.groupby("task"):                       # the unseen experts have weight 0: nothing is lost
        assert d["weight"].sum() == pytest.approx(1.0) and d["share_dominant"].sum() == pytest.approx(1.0)
    # without the layout the same numbers, with the zero columns
    plain = A.utilisation(frame)
    assert len(plain) == 12 and (plain[plain.task == "click"]["weight"].to_numpy()[4:] == 0).all()


def test_entropy_and_similarity_are_correct_on_the_zero_weights():
    frame, mc = _ple_frame()
    g = A.gate_matrix(frame, "click")
    lay = expert_layout(mc, TASKS, n_experts=6)
    seen = g[:, lay.visible("click")]
    np.testing.assert_allclose(A.sample_entropy(g), A.sample_entropy(seen), atol=1e-9)   # zeros add nothing
    assert (A.sample_entropy(g) <= math.log(lay.n_visible()) + 1e-9).all()
    sim = A.task_gate_similarity(frame, TASKS, "js")
    assert sim.loc["click", "click"] == pytest.approx(0.0, abs=1e-9) and 0 < sim.loc["click", "kind"] < 1
    # the tasks' own experts are disjoint: all weight on them is routing apart (1), the same weight on the
    # shared experts routing alike (0)
    def frame_of(click, kind):
        return pd.DataFrame({gate_col(t, j): [w[j]] for t, w in (("click", click), ("kind", kind))
                             for j in range(6)})
    apart = A.task_gate_similarity(frame_of([0, 0, .5, .5, 0, 0], [0, 0, 0, 0, .5, .5]), TASKS)
    alike = A.task_gate_similarity(frame_of([.3, .7, 0, 0, 0, 0], [.3, .7, 0, 0, 0, 0]), TASKS)
    assert apart.loc["click", "kind"] == pytest.approx(1.0) and alike.loc["click", "kind"] == pytest.approx(0.0)


def test_charts_mark_shared_and_task_experts():
    from mmoe_dashboard import gate_charts

    frame, mc = _ple_frame()
    lay = expert_layout(mc, TASKS, n_experts=6)
    seen = lay.visible("kind")
    g = A.gate_matrix(frame, "kind")[:, seen]
    fig = gate_charts.gate_heatmap(g, "kind", labels=[lay.labels()[j] for j in seen],
                              groups=[lay.groups()[j] for j in seen])
    assert list(fig.data[0].x) == ["s0", "s1", "kind:t0", "kind:t1"]
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), g)
    sep = [s for s in fig.layout.shapes if s.xref == "x"]
    assert [s.x0 for s in sep] == [1.5]                                    # between s1 and kind:t0
    assert [a.text for a in fig.layout.annotations] == ["shared", "kind's own"]
    util = gate_charts.utilisation_figure(A.utilisation(frame, layout=lay), tasks=TASKS)
    assert list(util.layout.xaxis.categoryarray) == ["s0", "s1", "click:t0", "click:t1", "kind:t0", "kind:t1"]
    assert [a.text for a in util.layout.annotations if a.text in ("shared", "click's own", "kind's own")] == [
        "shared", "click's own", "kind's own"]
    assert any("uniform 1/4" in (t.name or "") for t in util.data)         # 4 experts per gate, not 6
    details = {"row": 3, "tasks": {t: {"gates": A.gate_matrix(frame, t)[0].tolist()} for t in TASKS}}
    bars = gate_charts.sample_gates_figure(details, lay)
    assert [list(b.x) for b in bars.data] == [["s0", "s1", "click:t0", "click:t1"], ["s0", "s1", "kind:t0", "kind:t1"]]


def test_task_names_in_labels_are_plain_text_in_charts():
    from mmoe_dashboard import gate_charts

    lay = expert_layout(ModelConfig(arch="cgc", shared_experts=1, task_experts=1), ["<b>x</b>"])
    fig = gate_charts.gate_heatmap(np.array([[0.5, 0.5]]), "<b>x</b>", labels=lay.labels(), groups=lay.groups())
    assert list(fig.data[0].x) == ["s0", "&lt;b&gt;x&lt;/b&gt;:t0"]
    assert "&lt;b&gt;" in fig.layout.annotations[1].text
