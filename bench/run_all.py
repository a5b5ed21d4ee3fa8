"""Run every benchmark, each in its own process, then write bench/RESULTS.md.

    python -m bench.run_all [--device cpu|cuda] [--quick] [--only step,census,...]

Each benchmark writes bench/results/<name>.json; this script renders them all
into bench/RESULTS.md (machine, command, peer versions, targets met / missed)
and refreshes the headline block in bench/README.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time

from bench import common

BENCHES = ["step", "census", "sparse", "scaling", "overhead", "profile"]


def loadavg() -> str:
    """The 1/5/15-minute load averages and the tasks of other processes running right now (sampled;
    the load averages also count this run's own previous benchmarks)."""
    from mmoe.training.device import _busy_elsewhere

    try:
        avg = " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "n/a"
    busy = _busy_elsewhere(samples=51, gap=0.01)
    return avg + (f", busy now {busy:.2f}" if busy is not None else "")


def targets(res: dict) -> list[list[str]]:
    from bench import bench_census
    from bench.peers import product

    rows = []
    c = res.get("census")
    if c:
        h = bench_census.headline(c)
        if h:
            ok_speed = h["speedup_vs_fastest_peer"] >= 5
            ok_auc = h["auc_income_delta_vs_best_peer"] >= -0.005
            rows.append(["census throughput >= 5x fastest peer", f"{h['speedup_vs_fastest_peer']:.2f}x "
                         f"(vs {h['fastest_peer']})", "met" if ok_speed else
                         f"MISSED (needs {5 / h['speedup_vs_fastest_peer']:.2f}x more)"])
            rows.append(["census income AUC >= best peer - 0.005",
                         f"{h['product_auc_income']:.4f} vs {h['best_peer_auc_income']:.4f} "
                         f"({h['auc_income_delta_vs_best_peer']:+.4f})", "met" if ok_auc else "MISSED"])
            if "fp32_speedup_vs_fastest_peer" in h:
                x = h["fp32_speedup_vs_fastest_peer"]
                rows.append(["same, product in fp32 (a CPU without bf16)", f"{x:.2f}x, income AUC "
                             f"{h['fp32_auc_income_delta_vs_best_peer']:+.4f}",
                             "met" if x >= 5 and h["fp32_auc_income_delta_vs_best_peer"] >= -0.005 else
                             f"MISSED (needs {5 / x:.2f}x more)" if x < 5 else "MISSED (AUC)"])
    s = res.get("step")
    if s:
        for bs, r in s["batches"].items():
            p = r.get(product.NAME)
            p32 = r.get(f"{product.NAME} (fp32)")
            peers = [v["samples_per_second"] for n, v in r.items() if not n.startswith(product.NAME)]
            if p and peers:
                ratio = p["samples_per_second"] / max(peers)
                rows.append([f"step (batch {bs}) >= 1.5x best peer", f"{ratio:.2f}x"
                             + (f" (fp32: {p32['samples_per_second'] / max(peers):.2f}x)" if p32 else ""),
                             "met" if ratio >= 1.5 else f"MISSED (needs {1.5 / ratio:.2f}x more)"])
                frac = p["fraction_of_gemm"]
                bf16 = s.get("product_bf16")
                rows.append([f"step (batch {bs}) >= 75% of fp32 GEMM rate",
                             f"{100 * frac:.1f}% (strict count {100 * p['fraction_of_gemm_strict']:.1f}%)"
                             + (" with bf16 GEMMs" if bf16 else ""),
                             "met" if frac >= 0.75 else f"MISSED (needs {0.75 / frac:.2f}x more)"])
                if p32 and bf16:
                    f32 = p32["fraction_of_gemm"]
                    rows.append(["same, product in fp32 (like for like)",
                                 f"{100 * f32:.1f}% (strict count {100 * p32['fraction_of_gemm_strict']:.1f}%)",
                                 "met" if f32 >= 0.75 else f"MISSED (needs {0.75 / f32:.2f}x more)"])
                for name, v in ((product.NAME, p), (f"{product.NAME} (fp32)", p32)):
                    if v and "not_gemm_share" in v:
                        share = v["not_gemm_share"]
                        rows.append([f"step (batch {bs}), {name}: not-GEMM <= 25% of the step (roofline)",
                                     f"{100 * share:.1f}% (GEMMs alone {v['roofline_ms']:.2f} of "
                                     f"{v['ms_per_step']:.2f} ms)", "met" if share <= 0.25 else "MISSED"])
    sp = res.get("sparse")
    if sp:
        ratio = sp["rows"]["dense"]["ms"] / sp["rows"]["top-1"]["ms"]
        rows.append(["sparse top-1 of 16 >= 4x faster than dense", f"{ratio:.2f}x",
                     "met" if ratio >= 4 else f"MISSED (needs {4 / ratio:.2f}x more)"])
    o = res.get("overhead")
    if o:
        rows.append(["dashboard (job) overhead <= 10%", f"{100 * o['train_overhead']:+.1f}% train, "
                     f"{100 * o['run_overhead']:+.1f}% whole run",
                     "met" if max(o["train_overhead"], o["run_overhead"]) <= 0.10 else "MISSED"])
    return rows


def busy_warning(loads: dict, info: dict) -> list[str]:
    worst = 0.0
    for v in loads.values():
        try:
            worst = max(worst, float(v.split("busy now ")[1]))
        except (ValueError, IndexError):
            pass
    if worst > 0.25:
        return [f"- **Warning: the machine was busy** (up to {worst:.2f} tasks of other processes running on "
                f"{info.get('cores')} cores before a benchmark). Multi-threaded torch slows down by large, "
                "uneven factors under contention; ratios are less reliable and absolute numbers are not "
                "representative. Re-run on an idle machine."]
    return []


def render_all(res: dict, command: str, device: str, seconds: float, loads: dict, date: str | None = None) -> str:
    """RESULTS.md from the benchmarks' JSON; ``date``: when they ran (default now)."""
    from bench import bench_census, bench_overhead, bench_profile, bench_scaling, bench_sparse, bench_step

    info = next((r["machine"] for r in res.values() if r and "machine" in r), common.machine_info(device))
    versions = {}
    for r in res.values():
        versions.update((r or {}).get("versions", {}))
    out = ["# Benchmark results", "",
           f"- Command: `{command}` (total {seconds:.0f} s)",
           f"- Machine: {common.machine_line(info)}",
           f"- Date: {date or dt.datetime.now().isoformat(timespec='seconds')}",
           "- Contenders: " + "; ".join(f"{k} {v}" for k, v in versions.items()),
           "- Load average (1/5/15 min) before each benchmark: " + "; ".join(f"{k} {v}" for k, v in loads.items()),
           "- Every benchmark ran in its own process; contenders interleaved per repeat; medians; "
           "ratios are within one run.",
           "- Shim: DeepCTR-Torch's import-time PyPI version check (a non-daemon thread calling "
           "`requests.get` with no timeout) is made to fail fast during import (`bench/peers/_shims.py`); "
           "nothing in site-packages is patched. torch-rechub needed no shim.",
           *busy_warning(loads, info),
           "", "## Targets", "",
           common.md_table(["target", "measured", "status"], targets(res)), ""]
    renderers = {"step": bench_step.render, "census": bench_census.render, "sparse": bench_sparse.render,
                 "scaling": bench_scaling.render, "overhead": bench_overhead.render,
                 "profile": bench_profile.render}
    for name in BENCHES:
        if res.get(name):
            out += [f"<!-- bench:{name} -->", renderers[name](res[name]), f"<!-- /bench:{name} -->", ""]
    analysis = common.BENCH_DIR / "ANALYSIS.md"
    if analysis.exists():      # hand-written reading of the numbers (what misses, why, what to change)
        out += [analysis.read_text().rstrip(), ""]
    return "\n".join(out)


def _keep_others(md: str) -> str:
    """``md`` with the sections of the current RESULTS.md that this run does not render (the benchmarks
    that run on their own) appended, so a full run does not drop them."""
    old = common.RESULTS_MD.read_text() if common.RESULTS_MD.exists() else ""
    for name, body in common.other_sections(old, BENCHES):
        md = common.replace_section(md, name, body)
    return md


def headline_md(res: dict, command: str) -> str:
    rows = targets(res)
    return "\n".join([f"Last full run (`{command}`), details in [RESULTS.md](RESULTS.md):", "",
                      common.md_table(["target", "measured", "status"], rows)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--quick", action="store_true", help="fewer repeats / smaller sweeps (development)")
    ap.add_argument("--only", default=",".join(BENCHES))
    ap.add_argument("--render-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch/OpenMP threads for every benchmark process (default: torch's default, all cores)")
    a = ap.parse_args(argv)
    names = [n.strip() for n in a.only.split(",") if n.strip()]
    command = "python -m bench.run_all" + (f" --device {a.device}" if a.device != "cpu" else "") + \
              (" --quick" if a.quick else "") + (f" --only {a.only}" if a.only != ",".join(BENCHES) else "") + \
              (f" --threads {a.threads}" if a.threads else "")
    env = dict(os.environ)
    if a.threads:
        env.update(OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    t0 = time.perf_counter()
    loads, failed = {}, {}
    if a.render_only:                 # re-render RESULTS.md from the stored JSON of the last run
        import re
        old = common.RESULTS_MD.read_text() if common.RESULTS_MD.exists() else ""
        m = re.search(r"Command: `([^`]*)` \(total (\d+) s\)", old)
        lm = re.search(r"before each benchmark: (.*)", old)
        dm = re.search(r"^- Date: (\S+)", old, re.M)      # the run's date, not the re-render's
        if m:
            command = m.group(1)
        if lm:
            loads = dict(part.split(" ", 1) for part in lm.group(1).split("; "))
        names = []
        res = {n: common.read_json(n) for n in BENCHES}
        md = _keep_others(render_all(res, command, a.device, float(m.group(2)) if m else 0.0, loads,
                                    dm.group(1) if dm else None))
        common.RESULTS_MD.write_text(md)
        readme = common.BENCH_DIR / "README.md"
        readme.write_text(common.replace_section(readme.read_text(), "headline", headline_md(res, command)))
        print(md)
        return 0
    for name in names:
        loads[name] = loadavg()
        cmd = [sys.executable, "-m", f"bench.bench_{name}", "--device", a.device, "--no-write"] + \
              (["--quick"] if a.quick else [])
        common.log(f"== {name}: {' '.join(cmd[1:])}")
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=str(common.REPO), stdout=subprocess.PIPE, text=True, env=env)
        common.log(f"== {name}: exit {p.returncode} after {time.perf_counter() - t:.0f} s")
        if p.returncode != 0:
            failed[name] = p.returncode
    res = {n: common.read_json(n) for n in BENCHES}
    res = {n: (r if n in names and n not in failed else (r if n not in names else None)) for n, r in res.items()}
    seconds = time.perf_counter() - t0
    md = render_all(res, command, a.device, seconds, loads)
    if failed:
        md += "\n\nFailed benchmarks: " + ", ".join(f"{k} (exit {v})" for k, v in failed.items()) + "\n"
    md = _keep_others(md)
    common.RESULTS_MD.write_text(md)
    readme = common.BENCH_DIR / "README.md"
    if readme.exists():
        readme.write_text(common.replace_section(readme.read_text(), "headline", headline_md(res, command)))
    print(md)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
