"""mmoe.data.prepared: seeded splits, the summary, the real census-income data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmoe.config import DataConfig, TaskSpec
from mmoe.data import Preprocessor, prepare, prepare_for_prediction

TASKS3 = (TaskSpec("click"), TaskSpec("score", "regression"), TaskSpec("kind", "multiclass"))


def cfg(*tasks, **kw) -> DataConfig:
    return DataConfig(tasks=tasks or TASKS3, **kw)

def test_splits_are_seeded_disjoint_and_complete(tiny_frame):
    a = prepare(tiny_frame, cfg(test_fraction=0.1, seed=3))
    b = prepare(tiny_frame, cfg(test_fraction=0.1, seed=3))
    c = prepare(tiny_frame, cfg(test_fraction=0.1, seed=4))
    for k in ("train", "val", "test"):
        assert torch.equal(a.splits[k], b.splits[k]) and a.splits[k].dtype == torch.int64
    assert not torch.equal(a.splits["val"], c.splits["val"])
    allrows = torch.cat([a.splits[k] for k in ("train", "val", "test")]).sort().values
    assert torch.equal(allrows, torch.arange(200))
    assert "test" not in prepare(tiny_frame, cfg()).splits


def test_census_income_prepares(census_path):
    d = prepare(census_path, DataConfig(tasks=(TaskSpec("income_50k", "binary", positive="50000+."),
                                               TaskSpec("marital_stat", "binary", positive="Never married")),
                                        drop=("instance_weight",)))
    assert len(d) == 99762
    s = d.summary()
    assert s["tasks"]["income_50k"]["positive_rate"] == pytest.approx(0.062, abs=0.003)
    assert s["tasks"]["marital_stat"]["positive_rate"] == pytest.approx(0.43, abs=0.01)
    assert "instance_weight" not in d.feature_columns and s["ignored"]["instance_weight"] == "dropped"
    assert d.x_num.shape[0] == d.x_cat.shape[0] == 99762 and d.x_cat.shape[1] >= 25
    assert all(m.all() for m in d.mask.values())
    p = Preprocessor.from_json(d.preprocessor.to_json())
    x_num, x_cat, y, _ = prepare_for_prediction(d.frame.iloc[:100], p)
    assert torch.equal(x_num, d.x_num[:100]) and torch.equal(x_cat, d.x_cat[:100])


@pytest.mark.parametrize("as_frame", [False, True], ids=["path", "frame"])
def test_the_readers_label_codes_match_a_fresh_coding(tmp_path, as_frame):
    """Preparation reuses the label codes the reader's cleaning check made (each text column is hashed
    once); with rows entirely empty dropped, labels that needed cleaning and a column of numbers in text,
    the inputs equal a fresh coding of the same frame by the fitted preprocessor."""
    from mmoe.config import DataConfig, TaskSpec
    from mmoe.data import prepare, read_csv

    rng = np.random.default_rng(3)
    lines = ["city,shade,code,amount,y"]
    for i in range(120):
        if i in (7, 50):
            lines.append(",,,,")                        # dropped by the reader: the codes must follow
        lines.append(f"{rng.choice(['Oslo', 'Rome', 'Lima'])},{rng.choice([' red', 'blue ', 'NA', 'green'])},"
                     f"{rng.choice(['01', '02', '17'])},{rng.normal():.3f},{rng.integers(0, 2)}")
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    cfg = DataConfig(tasks=(TaskSpec("y", "binary"),), kind_overrides={"code": "categorical"})
    data = prepare(read_csv(path) if as_frame else path, cfg)
    x_num, x_cat = data.preprocessor.transform_features(read_csv(path))
    assert torch.equal(x_cat, data.x_cat) and torch.equal(x_num, data.x_num)
    assert len(data.frame) == 120 and set(data.frame["shade"].dropna()) == {"red", "blue", "green"}
