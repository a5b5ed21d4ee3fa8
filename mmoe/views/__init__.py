"""The dashboard's Streamlit-free view-model: what the Data, Train, Inspect and Compare pages
compute and show, testable without a browser.

    datasets    the Data page: built-in datasets, column tables, checking a configuration
    presets     the Train page's model presets
    jobview     the Train page: background jobs, live curves, outcomes
    runinfo     facts about a stored run (task kinds, feature columns)
    gates       gate weights: heatmap order, utilisation, entropy, task similarity
    evaluation  per-task plots of the stored predictions (ROC/PR, calibration, confusion, ...)
    history     per-epoch curves and the final metrics table
    comparing   settings differences, the metrics table, the best run per metric
    downloads   CSVs for people (formula cells neutralised), predictions CSV, model zip
    formatting  numbers as shown; user text as plain text (Markdown and plotly)

The analysis functions are re-exported here (``from mmoe import views as V; V.gate_matrix(...)``).
"""

from mmoe.views.comparing import (
    REGRESSION_LOSS,
    best_per_metric,
    flatten_settings,
    metric_direction,
    metrics_frame,
    primary_metric,
    settings_diff,
)
from mmoe.views.downloads import (
    MODEL_FILES,
    model_archive,
    model_archive_problems,
    people_csv,
    predictions_csv,
    quiet,
    readable_predictions,
    spreadsheet_safe,
)
from mmoe.views.evaluation import (
    MAX_SCATTER_POINTS,
    binary_curves,
    calibration,
    class_labels,
    confusion,
    labelled_count,
    normalise_rows,
    regression_points,
    sample_details,
    score_histogram,
)
from mmoe.views.formatting import chart_text, format_number, plain
from mmoe.views.gates import (
    MAX_HEATMAP_ROWS,
    dominant_expert,
    entropy_history,
    expert_labels,
    gate_columns,
    gate_matrix,
    gate_tasks,
    has_gates,
    js_divergence,
    max_entropy,
    order_and_sample,
    sample_entropy,
    task_gate_similarity,
    utilisation,
)
from mmoe.views.history import curves, ema, final_metrics_table, history_metrics
from mmoe.views.runinfo import device_text, feature_columns, no_better_than_baseline, task_kinds

__all__ = [
    "MAX_HEATMAP_ROWS",
    "MAX_SCATTER_POINTS",
    "MODEL_FILES",
    "REGRESSION_LOSS",
    "best_per_metric",
    "binary_curves",
    "calibration",
    "chart_text",
    "class_labels",
    "confusion",
    "curves",
    "device_text",
    "dominant_expert",
    "ema",
    "entropy_history",
    "expert_labels",
    "feature_columns",
    "final_metrics_table",
    "flatten_settings",
    "format_number",
    "gate_columns",
    "gate_matrix",
    "gate_tasks",
    "has_gates",
    "history_metrics",
    "js_divergence",
    "labelled_count",
    "max_entropy",
    "metric_direction",
    "metrics_frame",
    "model_archive",
    "model_archive_problems",
    "normalise_rows",
    "order_and_sample",
    "people_csv",
    "plain",
    "predictions_csv",
    "primary_metric",
    "quiet",
    "readable_predictions",
    "regression_points",
    "sample_details",
    "sample_entropy",
    "score_histogram",
    "settings_diff",
    "spreadsheet_safe",
    "task_gate_similarity",
    "task_kinds",
    "no_better_than_baseline",
    "utilisation",
]
