#!/usr/bin/env python3
"""The median of several benchmark results, as one Markdown table.

usage: bench/median.py bench/results/A.md bench/results/B.md bench/results/C.md

Every numeric cell of the scenario table (rate, latencies, errors, RSS, CPU per request, the
ratio to the ceiling) is the median of that cell over the files, taken cell by cell; so are
idle RSS, the time to the first /healthz and the binary size. Errors are summed instead: one
failed request in any run is a failure.
"""
import re
import statistics
import sys

HEADER = ("| scenario | rate | unit | p50 ms | p99 ms | non-2xx/3xx (sum) | sock err (sum) "
          "| peak RSS MB | CPU µs/req | vs ceiling |")


def table(text):
    rows = {}
    in_main = False
    for line in text.splitlines():
        if line.startswith("| scenario |") and "rate" in line:
            in_main = True
            continue
        if in_main and not line.startswith("|"):
            break
        if in_main and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def number(cell):
    m = re.match(r"^([\d.]+)", cell)
    return float(m.group(1)) if m else None


def bullet(text, pattern):
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None


def main():
    texts = [open(p, encoding="utf-8").read() for p in sys.argv[1:]]
    if len(texts) < 2:
        sys.exit("usage: median.py RESULT.md RESULT.md [RESULT.md …]")
    tables = [table(t) for t in texts]
    print(f"Median of {len(texts)} runs: " + ", ".join(sys.argv[1:]))
    print()
    print(HEADER)
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, cells in tables[0].items():
        runs = [t[name] for t in tables if name in t]
        med = lambda i: statistics.median(v for v in (number(r[i]) for r in runs) if v is not None)
        total = lambda i: int(sum(number(r[i]) or 0 for r in runs))
        ratios = [number(r[10]) for r in runs if r[10]]
        ratio = f"{statistics.median(ratios):.0f}% of {runs[0][10].split(' of ')[-1]}" if ratios else ""
        print(f"| {name} | {med(1):.0f} | {cells[2]} | {med(3):.2f} | {med(4):.2f} | {total(5)} "
              f"| {total(6)} | {med(8):.1f} | {med(9):.0f} | {ratio} |")
    print()
    for label, pattern, unit, digits in (
        ("idle RSS after start", r"idle RSS after start: [\d.]+ MB \((\d+) kB\)", "kB", 0),
        ("start to first /healthz", r"first 200 from /healthz: ([\d.]+) ms", "ms", 1),
        ("release binary", r"release binary \(stripped\): (\d+) bytes", "bytes", 0),
        ("ES256 signature (sign_cost)", r"sign_cost, .*?ES256 ([\d.]+) µs", "µs", 1),
        ("RS256 signature (sign_cost)", r"sign_cost, .*?RS256 ([\d.]+) µs", "µs", 1),
        ("scenario 7 bound by its two signatures", r"bounds scenario 7 at (\d+) flows/s", "flows/s", 0),
    ):
        vals = [v for v in (bullet(t, pattern) for t in texts) if v is not None]
        if vals:
            runs = ", ".join(f"{v:.{digits}f}" for v in vals)
            print(f"- {label}: {statistics.median(vals):.{digits}f} {unit} (runs: {runs})")


if __name__ == "__main__":
    main()
