#!/usr/bin/env python3
"""Barrage's timing error against the simulator's ground truth.

usage: accuracy.py RUN_DIR TRUTH.jsonl

For every request in both, compares Barrage's measured TTFT (send to first
output frame) with the simulator's true TTFT (arrival to the moment it handed
the first output frame to the connection), and the absolute times of the first
frame on both sides (CLOCK_MONOTONIC). Prints p50/p99/max of each difference.
"""
import json
import sys


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


run_dir, truth_path = sys.argv[1], sys.argv[2]
meta = json.load(open(f"{run_dir}/meta.json"))
origin = meta["origin_monotonic_ns"]
truth = {}
for line in open(truth_path):
    t = json.loads(line)
    if t["request_id"] is not None:
        first = next(f for f, c in zip(t["frames_ns"], t["content"]) if c)
        truth[t["request_id"]] = (t["arrived_ns"], first)
ttft_err, first_err, n = [], [], 0
for line in open(f"{run_dir}/records.jsonl"):
    r = json.loads(line)
    key = str(r["id"])
    if r["status"] != "ok" or key not in truth or r["first_token_ms"] is None:
        continue
    arrived, first = truth[key]
    measured_ttft = r["first_token_ms"] - r["sent_ms"]
    true_ttft = (first - arrived) / 1e6
    ttft_err.append(measured_ttft - true_ttft)
    first_err.append(origin / 1e6 + r["first_token_ms"] - first / 1e6)
    n += 1
for name, xs in [("TTFT measured - true (ms)", ttft_err), ("first frame seen - sent (ms)", first_err)]:
    print(f"{name}: n={len(xs)} p50={pct(xs, 50):.3f} p99={pct(xs, 99):.3f} max={max(xs):.3f}")
