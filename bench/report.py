#!/usr/bin/env python3
"""Turns the benchmark's raw measurements into one Markdown table.

usage: report.py ROWS_TSV WRK_DIR CLK_TCK
ROWS_TSV lines: key, label, ceiling key, unit, server CPU ticks, peak RSS kB.
WRK_DIR/wrk.<key>: wrk --latency output for that key.
"""
import re
import sys

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return None
    if m.group(2) == "m":
        return float(m.group(1)) * 60000.0
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(text):
    out = {"requests": 0, "secs": 0.0, "rps": 0.0, "p50": None, "p99": None, "non2xx": 0,
           "sockerr": 0, "flows": None, "badflows": 0, "spent": None, "fillers": 0,
           "elapsed": None}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if m:
        out["requests"] = int(m.group(1))
        out["secs"] = ms(m.group(2) + m.group(3)) / 1000.0
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(r"^\s+%s(?:\.0+)?%%\s+([\d.]+(?:us|ms|s|m))" % pct, text, re.M)
        if m:
            out[key] = ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["sockerr"] = sum(int(x) for x in m.groups())
    for tag, key in (("FLOWS", "flows"), ("BADFLOWS", "badflows"), ("SPENT", "spent"),
                     ("FILLERS", "fillers")):
        m = re.search(r"^%s (\d+)$" % tag, text, re.M)
        if m:
            out[key] = int(m.group(1))
    m = re.search(r"^ELAPSED ([\d.]+)$", text, re.M)
    if m:
        # The refresh pool ran out before the end: the rate is over the time it lasted.
        out["elapsed"] = float(m.group(1))
        out["secs"] = min(out["secs"], out["elapsed"])
    return out


def fmt_ms(v):
    if v is None:
        return "?"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def main():
    rows_path, wrk_dir, clk = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rows = []
    for line in open(rows_path):
        key, label, ceil, unit, ticks, rss = line.rstrip("\n").split("\t")
        w = parse_wrk(open(f"{wrk_dir}/wrk.{key}").read())
        rows.append((key, label, ceil, unit, int(ticks), int(rss), w))
    by_key = {r[0]: r for r in rows}
    print(f"| scenario | {'rate':>10} | unit | p50 ms | p99 ms | non-2xx/3xx | sock err "
          "| run s | peak RSS MB | CPU µs/req | vs ceiling |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, label, ceil, unit, ticks, rss, w in rows:
        rate = w["rps"]
        cpu_s = ticks / clk
        reqs = w["requests"]
        units = reqs
        if unit == "flows/s" and w["flows"] is not None and w["secs"] > 0:
            units = w["flows"]
            rate = w["flows"] / w["secs"]
        if unit == "rotations/s" and w["spent"] is not None and w["secs"] > 0:
            units = w["spent"]
            rate = w["spent"] / w["secs"]
        cpu_us = f"{cpu_s * 1e6 / units:.0f}" if units else "?"
        ratio = ""
        if ceil in by_key and ceil != key:
            c = by_key[ceil][6]["rps"]
            ratio = f"{100.0 * rate / c:.0f}% of {ceil}" if c else "?"
        errors = w["non2xx"] + w["badflows"]
        print(f"| {label} | {rate:10.0f} | {unit} | {fmt_ms(w['p50'])} | {fmt_ms(w['p99'])} "
              f"| {errors} | {w['sockerr']} | {w['secs']:.1f} | {rss / 1024:.1f} | {cpu_us} | {ratio} |")


if __name__ == "__main__":
    main()
