"""Training: the epoch loop (``loop.fit``), one optimisation step (``step``), scoring rows
(``evaluate``), where it computes (``device``: device, threads, precision) and the callback API
with the policies written as callbacks (``callbacks``: divergence, early stopping, time budget).

Never imports ``mmoe.runs`` or ``mmoe.views``: a run store is the caller's business.
"""
from mmoe.training.callbacks import Callback, TrainState
from mmoe.training.device import auto_threads, fits_on_device, resolve_device, use_bf16
from mmoe.training.evaluate import baseline_loss, evaluate, predict
from mmoe.training.loop import FitResult, fit
from mmoe.training.schedule import auto_schedule, resolve_schedule, schedule_text, schedule_warnings
from mmoe.training.step import TrainStep, UncertaintyWeights

__all__ = ["Callback", "TrainState", "FitResult", "fit", "TrainStep", "UncertaintyWeights", "predict", "evaluate",
           "baseline_loss", "resolve_device", "fits_on_device", "auto_threads", "use_bf16", "auto_schedule",
           "resolve_schedule", "schedule_text", "schedule_warnings"]
