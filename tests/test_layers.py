"""The layering of DESIGN.md, checked on the source: arrows point one way, files stay readable."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

MMOE = Path(__file__).resolve().parents[1] / "mmoe"
LOWER = ("data", "nn", "training")           # never import runs or views


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


SOURCES = sorted(MMOE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(MMOE)))
def test_no_streamlit_or_dashboard_in_the_engine(path):
    bad = {m for m in _imports(path) if m.split(".")[0] in ("streamlit", "dashboard", "mmoe_dashboard")}
    assert not bad, f"{path.relative_to(MMOE)} imports {sorted(bad)}"


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_do_not_import_runs_or_views(layer):
    for path in (MMOE / layer).rglob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(("mmoe.runs", "mmoe.views"))}
        assert not bad, f"{path.relative_to(MMOE)} imports {sorted(bad)}"


def test_nn_imports_only_itself_and_the_config():
    for path in (MMOE / "nn").rglob("*.py"):
        bad = {m for m in _imports(path) if m.startswith("mmoe.") and not m.startswith(("mmoe.nn", "mmoe.config",
                                                                                         "mmoe.tasks"))}
        assert not bad, f"{path.relative_to(MMOE)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(MMOE)))
def test_files_stay_short(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= 500, f"{path.relative_to(MMOE)} has {n} lines; split it by concept"


def test_the_engine_root_holds_only_the_shared_modules():
    """Every other module lives in its layer's folder."""
    assert {p.name for p in MMOE.glob("*.py")} == {"__init__.py", "__main__.py", "config.py", "tasks.py",
                                                   "synthetic.py", "cli.py"}
    assert {p.name for p in MMOE.iterdir() if p.is_dir() and not p.name.startswith("__")} >= {
        "data", "nn", "training", "runs", "views"}


DASHBOARD = MMOE.parent / "dashboard"


@pytest.mark.parametrize("path", sorted(DASHBOARD.rglob("*.py")), ids=lambda p: str(p.relative_to(DASHBOARD)))
def test_dashboard_pages_use_the_package_not_paths(path):
    """No sys.path edits; run artifacts only through mmoe.runs (no run-folder paths built by hand);
    each page is a main() called once at the bottom."""
    text = path.read_text(encoding="utf-8")
    assert "sys.path" not in text
    assert "artifact_dir(" not in text and "Path(home)" not in text
    if path.parent.name == "app_pages" and path.name != "__init__.py":
        assert "\ndef main() -> None:\n" in text and text.rstrip().endswith("\nmain()")
