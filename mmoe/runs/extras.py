"""Optional dependencies: the extras of pyproject.toml (``mmoe[onnx]``, ``mmoe[mlflow]``, ``mmoe[tensorboard]``).

    require("onnx", "ONNX export")   imports the extra's modules, or raises ``MissingExtra``: one line that
                                     says what needs it and what to pip install (the CLI exits 2 with it,
                                     the dashboard shows it as a note; never a traceback)

The exact versions live in pyproject.toml (and requirements-dev.txt, which CI installs); this module only
names the modules each extra must make importable.
"""
from __future__ import annotations

import importlib

from mmoe.runs.errors import StoreError

# extra -> (the modules it provides, the packages that provide them, for the message)
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "onnx": (("onnx", "onnxscript", "onnxruntime"), "onnx onnxscript onnxruntime"),
    "mlflow": (("mlflow", "sqlalchemy", "alembic"), "mlflow-skinny sqlalchemy alembic"),
    "tensorboard": (("tensorboard",), "tensorboard"),
}


class MissingExtra(StoreError):
    """An optional dependency is not installed; ``str(e)`` is one line that says what to install. A
    ``StoreError``, so whatever reports those in one line (the CLI's exit 2, the dashboard) reports it too."""

    def __init__(self, extra: str, what: str, module: str):
        packages = EXTRAS[extra][1]
        super().__init__(f"{what} needs the optional package {module!r}, which is not installed: "
                         f"pip install \"mmoe[{extra}]\" (in a checkout: pip install -e \".[{extra}]\"; "
                         f"the packages: {packages})")
        self.extra, self.module = extra, module


def require(extra: str, what: str) -> None:
    """Import every module of ``extra``; raise ``MissingExtra`` naming the first that is missing."""
    for module in EXTRAS[extra][0]:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtra(extra, what, module) from None
