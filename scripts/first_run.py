#!/usr/bin/env python3
"""Driver for scripts/first-run.sh: how soon the README's example starts writing on a machine
that has never run sluice (an empty compiled-component cache), against a warm cache, and
optionally against another sluice binary (e.g. one built before the stock components were
precompiled). Reports the median over ROUNDS interleaved rounds of the time to the first
output file and to the end of the run."""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time


def one_run(sluice, pipelines, cache, work):
    out = os.path.join(work, "out")
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, SLUICE_CACHE_DIR=cache, SLUICE_LOG="warn")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sluice, "run", "--from-scratch", "--no-reload", os.path.join(pipelines, "iot-sensors.toml")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    first = None
    while proc.poll() is None:
        if first is None and any(files for _, _, files in os.walk(out)):
            first = time.perf_counter() - started
        time.sleep(0.002)
    total = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{sluice} failed with exit code {proc.returncode}")
    if first is None:
        first = total
    return first, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--baseline-sluice")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    variants = [("empty cache", args.sluice, False), ("warm cache", args.sluice, True)]
    if args.baseline_sluice:
        variants.insert(1, ("empty cache, baseline binary", args.baseline_sluice, False))
    results = {name: [] for name, _, _ in variants}
    with tempfile.TemporaryDirectory() as work:
        pipelines = os.path.join(work, "pipelines")
        shutil.copytree(os.path.join(root, "pipelines"), pipelines)
        warm = os.path.join(work, "warm-cache")
        for _ in range(args.rounds):
            for name, binary, keep in variants:
                cache = warm if keep else os.path.join(work, "empty-cache")
                if not keep:
                    shutil.rmtree(cache, ignore_errors=True)
                results[name].append(one_run(binary, pipelines, cache, work))
    base = statistics.median(t for _, t in results["warm cache"])
    print(f"{'variant':32} {'first file (s)':>15} {'whole run (s)':>14} {'run / warm':>11}")
    for name, runs in results.items():
        first = statistics.median(f for f, _ in runs)
        total = statistics.median(t for _, t in runs)
        print(f"{name:32} {first:15.3f} {total:14.3f} {total / base:10.2f}x")


if __name__ == "__main__":
    main()
