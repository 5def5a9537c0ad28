#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 600) on a copy of its seed corpus.
# Needs cargo-fuzz (cargo install cargo-fuzz); RUSTC_BOOTSTRAP lets the stable toolchain
# accept the sanitizer flags.
set -u
cd "$(dirname "$0")/.."
seconds=${1:-600}
export RUSTC_BOOTSTRAP=1
export ASAN_OPTIONS=allocator_may_return_null=1
for target in cli_grammar npy_reader problem_builders; do
  work=$(mktemp -d)
  cp -r "fuzz/corpus/$target/." "$work/"
  echo "== $target, $seconds s"
  cargo fuzz run -O "$target" "$work" -- -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 2>&1 | tail -25
  echo "corpus after the run: $(ls "$work" | wc -l) inputs"
  rm -rf "$work"
done
