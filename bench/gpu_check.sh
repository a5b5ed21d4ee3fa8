#!/usr/bin/env bash
# The GPU checks of issue 14 as one call on a lent GPU machine (the `device` tool; it has no network).
#
# Here, once per session, from the repository root (.gpu/ is git-ignored through .git/info/exclude):
#   bash bench/gpu_check.sh --prepare      # wheels the device lacks (pandas 3, the two peers), census data
# Then one device call:
#   run(command="bash bench/gpu_check.sh", carry=[".gpu"], timeout_s=590)
# What comes back under $OUT: env.txt, gpu_tests.log, step_cuda.md/.json, census_cuda.md/.json, bench.log.
# Record the tables in bench/ANALYSIS.md's GPU section (then `python -m bench.run_all --render-only`).
#
# The device holds torch (CUDA), numpy, pyarrow, scikit-learn, pytest and its plugins, requests and tqdm;
# not pandas 3 (the project's pin), deepctr-torch or torch-rechub. mmoe runs from the checkout (PYTHONPATH).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--prepare" ]]; then
    set -e
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    mkdir -p .gpu/whl .gpu/data
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .gpu/whl pandas==3.1.1 deepctr-torch==0.3.0 torch-rechub==0.9.0
    cp ../shared/data/census-income.csv.gz .gpu/data/
    du -sh .gpu
    exit 0
fi

OUT="${OUT:-/tmp/gpu_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .gpu/whl/*.whl || { echo "wheel install failed"; exit 1; }
export PYTHONPATH="/tmp/site:$PWD" MMOE_BENCH_CENSUS="$PWD/.gpu/data/census-income.csv.gz"

{ nvidia-smi; python3 -c "import torch, pandas, numpy, sys; print(sys.version); print('torch', torch.__version__,
torch.version.cuda, torch.cuda.get_device_name(0)); print('pandas', pandas.__version__, 'numpy', numpy.__version__)"
  nproc; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

echo "== GPU tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.log"

echo "== step (batch 1024 and 16384)"
timeout 200 python3 -m bench.bench_step --device cuda --quick --no-write > "$OUT/step_cuda.md" 2> >(tee "$OUT/bench.log" >&2)
cp bench/results/step.json "$OUT/step_cuda.json" 2>/dev/null
cat "$OUT/step_cuda.md"

echo "== census, 10 epochs"
timeout 200 python3 -m bench.bench_census --device cuda --quick --no-write > "$OUT/census_cuda.md" 2> >(tee -a "$OUT/bench.log" >&2)
cp bench/results/census.json "$OUT/census_cuda.json" 2>/dev/null
cat "$OUT/census_cuda.md"
