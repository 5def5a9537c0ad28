#!/usr/bin/env python3
"""convt against PyTorch, TensorFlow and ONNX Runtime on the layer suite, in one run.

usage: python3 bench/compare.py [--python PY] [--threads 1 2] [--runs N]

PY is a Python with numpy, torch, tensorflow-cpu, onnxruntime and onnx installed, e.g.
    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install numpy tensorflow-cpu torch onnxruntime onnx
    python3 bench/compare.py --python /tmp/peers/bin/python
Each framework runs in its own process (bench/bench_peers.py); convt runs as
`convt bench --json` (build it first: cargo build --release). Prints, per thread count,
median ms per layer and the ratio best-peer-time / convt-time (> 1: convt is faster),
and the geometric mean of the ratios. With --runs N every framework (convt included) is
run N times, alternating, and each keeps its best median per layer: on a shared machine
single runs move by 10-30%. Check that the machine is idle first.
"""
import argparse
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def peer(python, framework, threads):
    out = subprocess.run([python, os.path.join(HERE, "bench_peers.py"), framework, str(threads)],
                         capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if out.returncode != 0:
        print(f"{framework}: failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return {}, "?"
    lines = out.stdout.strip().splitlines()
    version = json.loads(lines[0]).get("version", "?")
    times = {}
    for line in lines[1:]:
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1].endswith(" ms"):
            times[parts[0]] = float(parts[1].split()[0])
    return times, version


def convt(threads):
    exe = os.path.join(ROOT, "target", "release", "convt")
    out = subprocess.run([exe, "bench", "--json", "--threads", str(threads), "--seconds", "1"], capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {r["layer"]: r for r in rows}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=1, help="best of N runs per framework")
    args = parser.parse_args()
    best_of = lambda old, new: new if old is None or new < old else old
    for threads in args.threads:
        ours, peers = {}, {fw: {} for fw in ("torch", "tf", "ort")}
        for _ in range(max(args.runs, 1)):
            for layer, r in convt(threads).items():
                if layer not in ours or r["ms"] < ours[layer]["ms"]:
                    ours[layer] = r
            for fw in ("torch", "tf", "ort"):
                times, version = peer(args.python, fw, threads)
                for layer, t in times.items():
                    peers[fw][layer] = best_of(peers[fw].get(layer), t)
                peers[fw + "_version"] = version
        print(f"\n{threads} thread(s); torch {peers['torch_version']}, tensorflow {peers['tf_version']}, onnxruntime {peers['ort_version']}")
        print(f"{'layer':<15} {'convt ms':>10} {'GFLOP/s':>8} {'torch':>9} {'tf':>9} {'ort':>9}  {'best peer':>9}  {'ratio':>6}")
        # The issue's suite, then the few-channel R* layers: a geometric mean for each.
        ratios = {"suite": [], "R*": []}
        for layer, r in ours.items():
            ts = {fw: peers[fw].get(layer) for fw in ("torch", "tf", "ort")}
            best = min((t for t in ts.values() if t), default=None)
            ratio = best / r["ms"] if best else float("nan")
            if best:
                ratios["R*" if layer.startswith("R") else "suite"].append(ratio)
            cell = lambda t: f"{t:9.3f}" if t else f"{'n/a':>9}"
            print(f"{layer:<15} {r['ms']:10.3f} {r['gflops']:8.1f} {cell(ts['torch'])} {cell(ts['tf'])} {cell(ts['ort'])}  {cell(best)}  {ratio:6.2f}")
        for group, values in ratios.items():
            if values:
                mean = math.exp(sum(map(math.log, values)) / len(values))
                print(f"geometric mean of best-peer / convt ({group}): {mean:.2f}")


if __name__ == "__main__":
    main()
