"""Files -> PreparedData: the data pipeline, one step a module, arrows pointing down the list.

    errors      DataError (what, where, how to fix; ``field`` names the control) and value helpers
    reading     read_csv: bytes, path or file-like -> clean DataFrame (dialect, encoding, gzip sniffed)
    profiling   profile_columns: what each column is (numeric, categorical, identifier, constant, empty)
    targets     TargetEncoding: how a target column becomes y and a mask
    preprocess  Preprocessor: fitted on the training rows only, JSON round-trippable, frames -> tensors
    prepared    prepare: DataConfig + data -> PreparedData (tensors, masks, seeded splits, preprocessor)

Tensor legend: n rows, dn numeric inputs (incl. missing indicators), dc categorical columns.
    x_num float32 [n, dn]   x_cat int64 [n, dc]   y[task] [n] (int64 for multiclass, else float32)
    mask[task] bool [n]     (False where the target is missing: that row does not train that task)

Every refusal is a ``DataError`` (a ``ValueError``) whose message says what is wrong, where
(column, row or line) and how to fix it. "Row N" counts data rows from 1 (the header is not a
row); "line N" is the physical line of the file (the header is line 1).
"""
from mmoe.data.errors import MISSING_MARKERS, DataError
from mmoe.data.prepared import PreparedData, prepare, prepare_for_prediction, select_features
from mmoe.data.preprocess import Preprocessor, default_embedding_dim
from mmoe.data.profiling import ColumnProfile, profile_columns, suggest_task_kind
from mmoe.data.reading import clean_frame, read_csv
from mmoe.data.targets import TargetEncoding, encode_target, target_encoding

__all__ = [
    "DataError", "MISSING_MARKERS", "read_csv", "clean_frame", "ColumnProfile", "profile_columns",
    "suggest_task_kind", "TargetEncoding", "target_encoding", "encode_target", "Preprocessor",
    "default_embedding_dim", "PreparedData", "prepare", "prepare_for_prediction", "select_features",
]
