"""Regenerate the built-in sample datasets in data/ (see data/README.md).

    python data/make_samples.py                       # all files, into data/
    python data/make_samples.py --census PATH --out DIR

Every file is a pure function of the code and the seeds below, so running this
again reproduces the committed files byte for byte. The census sample is made
only when the shared UCI file exists; otherwise the script says so and skips it.
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_CENSUS = REPO.parent / "shared" / "data" / "census-income.csv.gz"
MAX_BYTES = 2_000_000

SYNTHETIC = dict(n_rows=2_500, correlation=0.5, n_features=100, m_sin=10, noise=0.01,
                 scale=3.0, seed=0, decimals=3)
CLICK_LIKE = dict(n_rows=20_000, seed=0)
WINE_LIKE = dict(n_rows=6_000, seed=0)
CENSUS_ROWS, CENSUS_SEED = 15_000, 0


def _load_synthetic():
    """Load mmoe/synthetic.py by path: it needs only numpy + pandas, not torch."""
    spec = importlib.util.spec_from_file_location("mmoe_synthetic", REPO / "mmoe" / "synthetic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_csv(frame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n")
    _report(path)


def _report(path: Path) -> None:
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1e6:.2f} MB)")
    if size >= MAX_BYTES:
        raise SystemExit(f"{path} is {size} bytes, over the {MAX_BYTES}-byte limit for data/")


def census_sample(source: Path, dest: Path, n_rows: int = CENSUS_ROWS, seed: int = CENSUS_SEED) -> None:
    """A seeded random sample of the lines of ``source`` (header kept, text untouched, file order)."""
    with gzip.open(source, "rt", encoding="utf-8", newline="") as f:
        header, *rows = f.read().splitlines(keepends=True)
    if n_rows > len(rows):
        raise SystemExit(f"{source} has only {len(rows)} data rows, cannot sample {n_rows}")
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=n_rows, replace=False))
    text = header + "".join(rows[i] for i in keep)
    with open(dest, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(text.encode("utf-8"))   # mtime=0, no name: identical bytes on every run
    _report(dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: data/)")
    parser.add_argument("--census", type=Path, default=DEFAULT_CENSUS,
                        help=f"UCI census-income file (default: {DEFAULT_CENSUS})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    syn = _load_synthetic()

    _write_csv(syn.paper_synthetic(**SYNTHETIC), args.out / "synthetic_p0.5.csv")
    _write_csv(syn.click_like(**CLICK_LIKE), args.out / "click_like.csv")
    _write_csv(syn.wine_like(**WINE_LIKE), args.out / "wine_like.csv")
    if args.census.exists():
        census_sample(args.census, args.out / "census_sample.csv.gz")
    else:
        print(f"skipped census_sample.csv.gz: {args.census} not found "
              "(it exists only beside the dev checkout / CI)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
