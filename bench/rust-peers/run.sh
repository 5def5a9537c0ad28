#!/bin/sh
# Times convt and the Rust peers (burn-flex, candle, tract) on the benchmark layers at 1 and
# 2 threads. Needs a Python with onnx for tract's models (bench/bench_peers.py).
# usage: bench/rust-peers/run.sh [PYTHON]
set -e
here=$(cd "$(dirname "$0")" && pwd)
python=${1:-python3}
models=$(mktemp -d)
"$python" "$here/../bench_peers.py" onnx-files "$models" > /dev/null
(cd "$here" && cargo build --release)
for threads in 1 2; do
    RAYON_NUM_THREADS=$threads "$here/target/release/convt-rust-peers" "$threads" "$models"
    echo
done
rm -rf "$models"
