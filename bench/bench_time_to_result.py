"""Time to result of ``python -m mmoe train`` on census-income (10 epochs): the overhead beyond training,
against the floor of any Python tool here, measured in one run.

    python -m bench.bench_time_to_result [--repeats 3] [--epochs 10] [--no-bf16]

floor: a fresh ``python -c "import torch, pandas; pandas.read_csv(CENSUS)"`` (what any Python tool
that trains with torch on this CSV pays before its first step). product: a fresh ``python -m mmoe train
... --epochs 10 --json`` into a temporary store; its training time is the ``train_seconds`` of its JSON
(the optimiser steps), and the overhead is the rest of its wall time (imports, reading, preparation,
the per-epoch validation, storing the run, predictions and model). Commands alternate; target: overhead
<= 1.5x the floor, judged on the median of each repeat's own pair (its floor and its train command run back to
back, so the host's drift between repeats cancels), with the ratio of the two medians shown beside it.
``-X importtime`` of the same command names the heaviest modules it imports.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from bench import common

TASKS = ["--task", "income_50k:binary=50000+.", "--task", "marital_stat:binary=Never married",
         "--drop", "instance_weight"]


def _wall(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return wall, out.stdout


def heaviest_imports(cmd: list[str], env: dict, n: int = 8) -> list[tuple[str, float]]:
    """The top-level packages the command imports, by cumulative import time (seconds)."""
    out = subprocess.run([sys.executable, "-X", "importtime", *cmd[1:]], capture_output=True, text=True, env=env,
                         timeout=900)
    top: dict[str, float] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        try:
            cum = int(parts[1]) / 1e6
        except ValueError:
            continue
        name = parts[2].rstrip()
        mod = name.strip()
        if name == " " + mod:                  # depth 0: imported by the command itself, not by a package
            pkg = mod.split(".")[0]
            top[pkg] = max(top.get(pkg, 0.0), cum)
    return sorted(top.items(), key=lambda kv: -kv[1])[:n]


def run(repeats: int, epochs: int, no_bf16: bool = False) -> dict:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="0")
    floor_cmd = [sys.executable, "-c", f"import torch, pandas; pandas.read_csv({str(common.CENSUS)!r})"]
    rows = []
    with tempfile.TemporaryDirectory() as home:
        train_cmd = [sys.executable, "-m", "mmoe", "train", "--data", str(common.CENSUS), *TASKS,
                     "--epochs", str(epochs), "--json", "--quiet", "--store", home,
                     # as on a CPU without bf16, where the default precision (auto) is fp32
                     *(["--precision", "fp32"] if no_bf16 else [])]
        _wall(floor_cmd, env)                          # warm the page cache and the .pyc files
        _wall(train_cmd, env)
        for r in range(repeats):
            order = [("floor", floor_cmd), ("train", train_cmd)]
            if r % 2:
                order.reverse()
            got = {}
            for name, cmd in order:
                got[name] = _wall(cmd, env)
            floor = got["floor"][0]
            wall, stdout = got["train"]
            res = json.loads(stdout.strip().splitlines()[-1])
            train = float(res["train_seconds"])
            rows.append({"floor_s": floor, "wall_s": wall, "train_s": train, "overhead_s": wall - train,
                         "auc_income": res["metrics"]["income_50k"]["auc"]})
            common.log(f"repeat {r + 1}/{repeats}: floor {floor:.2f} s; train wall {wall:.2f} s = training "
                       f"{train:.2f} s + overhead {wall - train:.2f} s ({(wall - train) / floor:.2f}x the floor)")
        imports = heaviest_imports(train_cmd, env)
    for x in rows:
        x["ratio"] = x["overhead_s"] / x["floor_s"]
    med = {k: common.median([x[k] for x in rows]) for k in rows[0]}
    # the target is judged on each repeat's own pair (its floor and its train command, run back to back), which
    # cancels the host's drift between repeats; the ratio of the two medians is shown beside it
    med["ratio_of_medians"] = med["overhead_s"] / med["floor_s"]
    return {"machine": common.machine_info("cpu"), "epochs": epochs, "repeats": repeats, "no_bf16": no_bf16, "median": med,
            "runs": rows, "imports": imports, "load": common.load_1min()}


def render(res: dict) -> str:
    m = res["median"]
    ok = m["ratio"] <= 1.5
    return "\n".join([
        "## Time to result: `python -m mmoe train` on census-income", "",
        f"{common.machine_line(res['machine'])}. `python -m bench.bench_time_to_result --repeats {res['repeats']} "
        f"--epochs {res['epochs']}{' --no-bf16' if res.get('no_bf16') else ''}`; fresh processes, alternating, medians"
        + ("; the train command with `--precision fp32`, what `auto` is on a CPU without bf16" if res.get("no_bf16")
           else "") + ".", "",
        common.md_table(["floor: import torch + pandas, read the CSV", "train: wall", "of which training steps",
                         "overhead (wall - training)", "overhead / floor (median of the repeats' pairs)",
                         "ratio of the medians", "target <= 1.5x"],
                        [[f"{m['floor_s']:.2f} s", f"{m['wall_s']:.2f} s", f"{m['train_s']:.2f} s",
                          f"{m['overhead_s']:.2f} s", f"{m['ratio']:.2f}x", f"{m['ratio_of_medians']:.2f}x",
                          "met" if ok else "MISSED"]]), "",
        "Each repeat's pair: " + ", ".join(f"{x['ratio']:.2f}x" for x in res["runs"]) + ".", "",
        "Heaviest top-level imports of the train command (cumulative import time): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in res["imports"]) + ".",
        f"Load average after: {res['load']}.", ""])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-bf16", action="store_true", help="run as on a CPU without native bf16 (see bench_census)")
    a = ap.parse_args(argv)
    if a.no_bf16:
        common.emulate_no_bf16()
    res = run(a.repeats, a.epochs, a.no_bf16)
    common.write_json("time_to_result", res)
    md = render(res)
    print(md)
    if not a.no_write:
        common.update_results_md("time_to_result", md)
    return res


if __name__ == "__main__":
    main()
