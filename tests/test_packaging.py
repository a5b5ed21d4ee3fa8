"""The package installs as a package: a wheel declares its dependencies and holds the dashboard and
the sample data; installed (not editable) it works from an empty folder, `mmoe dashboard` included."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNTIME = {"torch", "numpy", "pandas", "scikit-learn", "streamlit", "plotly", "pyarrow"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("mmoe-*.whl")
    return whl


def test_wheel_declares_the_runtime_dependencies_and_holds_dashboard_and_data(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    required = {line.split(":", 1)[1].strip().split(";")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
                for line in meta.splitlines() if line.startswith("Requires-Dist:")}
    assert RUNTIME <= required, required
    assert {"mmoe_dashboard/app.py", "mmoe_dashboard/app_pages/data.py", "mmoe_dashboard/charts.py"} <= names
    samples = {p.name for p in (REPO / "data").glob("*.csv*")}
    assert samples and {f"mmoe/samples/{s}" for s in samples} <= names
    assert {"mmoe/data/reading.py", "mmoe/nn/model.py", "mmoe/training/loop.py", "mmoe/runs/store.py",
            "mmoe/views/gates.py"} <= names
    assert "mmoe = mmoe.cli:run" in entry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_installed_wheel_works_from_an_empty_folder(wheel, tmp_path):
    """A fresh environment (its dependencies borrowed from this one, so nothing is downloaded) with
    the wheel installed, not the checkout: --help, the built-in datasets, and a healthy dashboard."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--force-reinstall",
                    str(wheel)],
                   check=True, capture_output=True, timeout=300)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MMOE_HOME")}
    run = lambda *a: subprocess.run([str(py), *a], cwd=empty, env=env, capture_output=True, text=True,  # noqa: E731
                                    timeout=120)
    h = run("-m", "mmoe", "--help")
    assert h.returncode == 0 and "dashboard" in h.stdout, h.stderr
    info = run("-c", "import mmoe, mmoe.views.datasets as d; print(mmoe.__file__); print(d.DATA_DIR); "
                     "print(all(b.available for b in d.BUILTINS))")
    where, data_dir, available = info.stdout.split()
    assert str(env_dir) in where and str(env_dir) in data_dir, info.stdout   # the wheel, not the checkout
    assert available == "True"
    port = _free_port()
    proc = subprocess.Popen([str(env_dir / "bin" / "mmoe"), "dashboard", "--port", str(port), "--store",
                             str(tmp_path / "store")], cwd=empty, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, body = time.monotonic() + 90, ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.3)
        assert body == "ok", (proc.poll(), proc.stdout.read1().decode() if proc.poll() is not None else "")
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        assert "<html" in page.lower()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
