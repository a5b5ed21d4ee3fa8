"""mmoe.data.targets: binary, regression and multiclass target encodings; masked missing targets."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from frames import small_frame as _frame

from mmoe.config import DataConfig, TaskSpec
from mmoe.data import prepare, read_csv

TASKS3 = (TaskSpec("click"), TaskSpec("score", "regression"), TaskSpec("kind", "multiclass"))


def cfg(*tasks, **kw) -> DataConfig:
    return DataConfig(tasks=tasks or TASKS3, **kw)

@pytest.mark.parametrize("values,negative,positive", [
    ([0, 1], "0", "1"), ([1, 0], "0", "1"), ([True, False], "False", "True"), (["no", "yes"], "no", "yes"),
    (["Yes", "No"], "No", "Yes"), (["y", "n"], "n", "y"), (["pos", "neg"], "neg", "pos"), ([-1, 1], "-1", "1"),
    (["dog", "cat"], "cat", "dog"), ([2.0, 10.0], "2", "10"),
])
def test_binary_natural_mapping(values, negative, positive):
    n = 40
    col = [values[i % 2] for i in range(n)]
    df = pd.DataFrame({"t": col, "f": np.arange(n) % 7})
    d = prepare(df, cfg(TaskSpec("t")))
    assert d.preprocessor.class_labels("t") == [negative, positive]
    pos_rows = [str(v) if not isinstance(v, float) else f"{v:g}" for v in col]
    expected = [1.0 if r == positive else 0.0 for r in pos_rows]
    assert d.y["t"].tolist() == expected and d.y["t"].dtype == torch.float32
    assert d.task_dims == {"t": 1}


def test_binary_positive_value_with_stray_spaces_and_numbers():
    df = read_csv(b"inc, m ,f\n" + b"".join(
        [b" 50000+., Never married, 1\n", b" - 50000., Divorced, 2\n", b" - 50000., Married, 3\n"] * 10))
    d = prepare(df, cfg(TaskSpec("inc", positive="50000+."), TaskSpec("m", positive="Never married")))
    assert d.y["inc"].tolist()[:3] == [1.0, 0.0, 0.0]
    assert d.preprocessor.class_labels("inc") == ["- 50000.", "50000+."]
    assert d.preprocessor.class_labels("m") == ["not Never married", "Never married"]  # 3 values: rest are 0
    assert d.y["m"].tolist()[:3] == [1.0, 0.0, 0.0]
    num = pd.DataFrame({"t": [0.0, 1.0, 2.0] * 10, "f": range(30)})
    d = prepare(num, cfg(TaskSpec("t", positive="1")))
    assert d.y["t"].tolist()[:3] == [0.0, 1.0, 0.0]
    d = prepare(_frame(), cfg(TaskSpec("click", positive="YES")))  # unique case-insensitive match
    assert d.preprocessor.class_labels("click") == ["no", "yes"]


def test_regression_is_standardised_with_train_stats(tiny_frame):
    d = prepare(tiny_frame, cfg())
    tr = d.splits["train"].numpy()
    mean, std = d.preprocessor.target_scale("score")
    assert mean == pytest.approx(tiny_frame["score"].iloc[tr].mean())
    assert std == pytest.approx(tiny_frame["score"].iloc[tr].std(ddof=0))
    assert mean != pytest.approx(tiny_frame["score"].mean())
    back = d.y["score"].double() * std + mean
    assert np.allclose(back.numpy(), tiny_frame["score"].to_numpy(), atol=1e-5)
    assert d.preprocessor.target_scale("click") == (0.0, 1.0)
    assert d.preprocessor.class_labels("score") == []


def test_multiclass_indices_follow_class_labels(tiny_frame):
    d = prepare(tiny_frame, cfg())
    labels = d.preprocessor.class_labels("kind")
    assert labels == ["hi", "lo", "mid"] and d.task_dims["kind"] == 3
    assert d.y["kind"].dtype == torch.int64
    assert [labels[i] for i in d.y["kind"].tolist()] == tiny_frame["kind"].tolist()


def test_missing_target_is_masked_not_dropped(tiny_frame):
    df = tiny_frame.copy()
    df.loc[[0, 5], "click"] = np.nan
    df.loc[[5, 7], "score"] = np.nan
    d = prepare(df, cfg())
    assert len(d) == len(df)
    assert d.mask["click"][[0, 5]].tolist() == [False, False] and d.y["click"][[0, 5]].tolist() == [0.0, 0.0]
    assert d.mask["score"][[5, 7]].tolist() == [False, False] and d.y["score"][[5, 7]].tolist() == [0.0, 0.0]
    assert d.mask["kind"].all() and d.mask["score"][0]
    s = d.summary()["tasks"]
    assert s["click"]["missing"] == 2 and s["score"]["missing"] == 2 and s["kind"]["missing"] == 0


def test_a_threshold_makes_a_binary_task_of_a_number():
    import numpy as np
    import pandas as pd
    import pytest

    from mmoe.config import ConfigError, TaskSpec
    from mmoe.data.errors import DataError
    from mmoe.data.targets import TargetEncoding, encode_target, target_encoding

    spec = TaskSpec.parse("quality:binary>= 7")
    assert (spec.kind, spec.threshold, spec.label()) == ("binary", ">=7", "quality:binary>=7")
    assert TaskSpec.parse("q:binary<0.5").threshold == "<0.5"
    s = pd.Series([5.0, 7.0, 8.5, np.nan, 6.9])
    enc = target_encoding(s, spec, 50)
    assert enc.classes == ("not quality >=7", "quality >=7") and enc.threshold == ">=7"
    y, mask = encode_target(s, TargetEncoding.from_dict(enc.to_dict()), "quality")   # saved and loaded
    assert y.tolist() == [0, 1, 1, 0, 0] and mask.tolist() == [True, True, True, False, True]
    with pytest.raises(DataError, match="no labelled value is >=10"):
        target_encoding(s, TaskSpec("quality", threshold=">=10"), 50)
    with pytest.raises(DataError, match="must be numeric for a threshold"):
        target_encoding(pd.Series(["a", "b"]), TaskSpec("x", threshold=">1"), 50)
    for bad in ("=>7", ">=seven", "7"):
        with pytest.raises(ConfigError, match="OP NUMBER"):
            TaskSpec("q", threshold=bad)
    with pytest.raises(ConfigError, match="threshold"):
        TaskSpec("q", "regression", threshold=">1")
