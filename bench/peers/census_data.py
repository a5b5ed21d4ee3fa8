"""Census-income for the benchmarks: the raw frame, the paper's two labels, one seeded 80/20 split.

Every contender trains on the same training rows and is scored on the same
validation rows (``CensusSplit.train_idx`` / ``val_idx``). Each peer then applies
its own customary preprocessing (``peer_encode``: LabelEncoder for categorical
columns, MinMaxScaler for numeric ones, as in the DeepCTR-Torch and torch-rechub
census / MMoE examples); the product applies its own ``mmoe.data.prepare``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.common import CENSUS

TARGETS = ("income_50k", "marital_stat")
DROP = ("instance_weight",)      # a survey sampling weight, not a feature: dropped for every contender
LABELS = ("income", "marital")
# The DeepCTR-Torch census MMoE example's sparse feature list (det_ind_code / det_occ_code are codes).
SPARSE = ['class_worker', 'det_ind_code', 'det_occ_code', 'education', 'hs_college', 'major_ind_code',
          'major_occ_code', 'race', 'hisp_origin', 'sex', 'union_member', 'unemp_reason',
          'full_or_part_emp', 'tax_filer_stat', 'region_prev_res', 'state_prev_res', 'det_hh_fam_stat',
          'det_hh_summ', 'mig_chg_msa', 'mig_chg_reg', 'mig_move_reg', 'mig_same', 'mig_prev_sunbelt',
          'fam_under_18', 'country_father', 'country_mother', 'country_self', 'citizenship',
          'vet_question']


@dataclass
class CensusSplit:
    frame: pd.DataFrame          # raw columns as read (targets included)
    y: np.ndarray                # [n, 2] float32: income_50k == '50000+.', marital_stat == 'Never married'
    train_idx: np.ndarray
    val_idx: np.ndarray
    read_seconds: float

    @property
    def dense(self) -> list[str]:
        return [c for c in self.frame.columns if c not in SPARSE and c not in TARGETS and c not in DROP]


def load_census(path=CENSUS, rows: int | None = None, val_fraction: float = 0.2, seed: int = 0) -> CensusSplit:
    t0 = time.perf_counter()
    frame = pd.read_csv(path, nrows=rows)
    read = time.perf_counter() - t0
    y = np.stack([(frame["income_50k"].astype(str).str.strip() == "50000+.").to_numpy(),
                  (frame["marital_stat"].astype(str).str.strip() == "Never married").to_numpy()],
                 1).astype(np.float32)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(frame))
    n_val = int(round(len(frame) * val_fraction))
    return CensusSplit(frame, y, np.sort(perm[n_val:]), np.sort(perm[:n_val]), read)


def peer_encode(split: CensusSplit) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    """The peers' example preprocessing: fillna, MinMaxScaler on dense, LabelEncoder on sparse.

    As in both peers' examples the (unsupervised) encoders are fitted on the whole
    frame before splitting. Returns (encoded frame, sparse vocab sizes, dense columns).
    """
    from sklearn.preprocessing import LabelEncoder, MinMaxScaler

    data = split.frame.drop(columns=list(TARGETS) + list(DROP)).copy()
    dense = split.dense
    data[SPARSE] = data[SPARSE].astype(str).fillna("-1")
    data[dense] = data[dense].fillna(0)
    data[dense] = MinMaxScaler(feature_range=(0, 1)).fit_transform(data[dense]).astype(np.float32)
    vocab = {}
    for feat in SPARSE:
        data[feat] = LabelEncoder().fit_transform(data[feat])
        vocab[feat] = int(data[feat].max()) + 1
    return data, vocab, dense


def auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_true, y_score))
