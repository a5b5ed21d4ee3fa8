"""The command line's safe outputs: `predict` neutralises formula cells (OWASP), `--name` is one line of
at most 200 characters without control characters, `runs` never prints a raw control character, and
`mmoe dashboard` listens on 127.0.0.1 unless told otherwise."""
from __future__ import annotations

import csv
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest
from frames import make_tiny_frame

from mmoe.cli import main
from mmoe.runs.store import RunStore
from mmoe.views.serve import dashboard_command, launch_message, option

# (a leading tab or carriage return does not survive reading the CSV, which strips stray spaces; the
# download path keeps them: tests/views/test_safe_outputs.py)
FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "=cmd|' /C calc'!A0"]


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_neutralises_formula_cells_and_headers(capsys, tmp_path, mmoe_home):
    df = make_tiny_frame()
    df["kind"] = df["kind"].map({"hi": "=hi", "lo": "-lo", "mid": "@mid"})     # class labels a formula could be
    train_csv = tmp_path / "train.csv"
    df.to_csv(train_csv, index=False)
    code, _, err = run_cli(capsys, "train", "--data", train_csv, "--task", "click:binary=yes", "--task",
                           "kind:multiclass", "--epochs", 2, "--expert-hidden", 8, "--quiet")
    assert code == 0, err
    new = df.drop(columns=["click", "kind"]).head(len(FORMULAS) + 1).copy()
    new["=cmd"] = FORMULAS + ["fine"]
    new["a"] = -new["a"].abs()                                                     # negative numbers
    new_csv = tmp_path / "new.csv"
    new.to_csv(new_csv, index=False, quoting=csv.QUOTE_NONNUMERIC)
    out_csv = tmp_path / "preds.csv"
    code, _, err = run_cli(capsys, "predict", "--run", 1, "--data", new_csv, "--out", out_csv)
    assert code == 0, err
    back = pd.read_csv(out_csv, keep_default_na=False)
    assert "'=cmd" in back.columns and "=cmd" not in back.columns
    assert back["'=cmd"].tolist() == ["'" + f for f in FORMULAS] + ["fine"]
    assert back["a"].dtype.kind == "f" and (back["a"] < 0).all()                  # numbers stay numbers
    assert back["a"].tolist() == pytest.approx(new["a"].tolist())
    assert set(back["pred:kind"]) <= {"'=hi", "'-lo", "'@mid"}
    assert {"prob:kind:=hi", "prob:kind:-lo", "prob:kind:@mid"} <= set(back.columns)   # no formula: left as is


@pytest.mark.parametrize("name, why", [("two\nlines", "line break"), ("\x1b[2Jclear", "terminal escape"),
                                       ("n" * 201, "201 characters")])
@pytest.mark.parametrize("command", ["train", "experiment"])
def test_name_refused_with_one_line_exit_2(capsys, tmp_path, mmoe_home, command, name, why):
    data = tmp_path / "d.csv"
    make_tiny_frame(40).to_csv(data, index=False)
    code, out, err = run_cli(capsys, command, "--data", data, "--task", "click:binary=yes", "--name", name,
                             "--epochs", 1, "--quiet", *(["--seeds", 1] if command == "experiment" else []))
    assert code == 2 and why in err and len(err.strip().splitlines()) == 1 and "\x1b" not in err
    assert not (mmoe_home / "runs.sqlite").exists() or RunStore(mmoe_home).list_runs() == []


def test_name_of_200_characters_is_accepted(capsys, tmp_path, mmoe_home):
    data = tmp_path / "d.csv"
    make_tiny_frame(40).to_csv(data, index=False)
    code, _, err = run_cli(capsys, "train", "--data", data, "--task", "click:binary=yes", "--name", " " + "n" * 200,
                           "--epochs", 1, "--quiet")
    assert code == 0, err
    assert RunStore(mmoe_home).list_runs()[0].name == "n" * 200


def test_runs_prints_stored_control_characters_escaped(capsys, mmoe_home):
    store = RunStore(mmoe_home)
    rid = store.create_run("ok", dataset="d.csv", data_config={"tasks": []}, model_config={"arch": "mmoe"},
                           train_config={})
    store.close()
    evil = "evil\x1b[2J\x1b]0;owned\x07\nsecond line\r\u202e\x9b"
    with sqlite3.connect(mmoe_home / "runs.sqlite") as c:       # as a name stored before the rule existed
        c.execute("UPDATE runs SET name = ?, stop_reason = ? WHERE id = ?", (evil, "why\x1b[31m", rid))
    code, out, _ = run_cli(capsys, "runs")
    assert code == 0
    assert not any(ch in out for ch in "\x1b\x07\r\u202e\x9b")
    lines = out.splitlines()
    assert len(lines) == 3 and "evil\\x1b[2J" in lines[1] and "why\\x1b[31m" in lines[2]   # header, run, reason
    code, out, _ = run_cli(capsys, "runs", "--json")
    assert code == 0 and "\x1b" not in out and len(out.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- mmoe dashboard

def test_dashboard_binds_localhost_unless_told_otherwise():
    cmd = dashboard_command(8501, [], {})
    assert option(cmd, "--server.address") == "127.0.0.1"
    assert option(cmd, "--client.showErrorDetails") == "type"
    assert "http://localhost:8501" in launch_message(cmd, 8501, {}) and "authentication" not in \
        launch_message(cmd, 8501, {})
    shared = dashboard_command(8501, ["--server.address", "0.0.0.0"], {})
    assert option(shared, "--server.address") == "0.0.0.0"              # the user's option comes last and wins
    assert "authentication" in launch_message(shared, 8501, {})
    env = {"STREAMLIT_SERVER_ADDRESS": "10.0.0.5", "STREAMLIT_CLIENT_SHOW_ERROR_DETAILS": "full"}
    from_env = dashboard_command(8501, [], env)
    assert option(from_env, "--server.address") is None and option(from_env, "--client.showErrorDetails") is None
    assert "http://10.0.0.5:8501" in launch_message(from_env, 8501, env)


def _listening(port: int) -> set[str]:
    """Local addresses listening on ``port`` (Linux /proc/net/tcp and tcp6)."""
    found = set()
    for table, size in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:
                found.add(addr if size == 32 else socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads the listening sockets from /proc/net/tcp")
def test_mmoe_dashboard_listens_on_loopback_only(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    proc = subprocess.Popen([sys.executable, "-m", "mmoe", "dashboard", "--port", str(port), "--store",
                             str(tmp_path / "runs")], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, body = time.monotonic() + 90, ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.3)
        assert body == "ok", proc.poll()
        assert _listening(port) == {"127.0.0.1"}
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
