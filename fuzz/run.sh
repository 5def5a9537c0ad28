#!/usr/bin/env bash
# Runs fuzz targets (default: all three) for SECONDS (default 600) each, on a copy of their
# seed corpus: fuzz/run.sh [SECONDS [TARGET...]]. A crash input lands in fuzz/artifacts;
# keep it in fuzz/regressions/TARGET/ once fixed, where `cargo test` replays it.
# Needs cargo-fuzz (cargo install cargo-fuzz); RUSTC_BOOTSTRAP lets the stable toolchain
# accept the sanitizer flags. The targets build unoptimised (--dev): with overflow checks
# and debug assertions, which catch what a release build would wrap silently, and in a
# third of the release build's time (1.7 against 5 minutes on 2 cores), which is most
# of a short run.
set -u
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=${*:-cli_grammar npy_reader problem_builders}
export RUSTC_BOOTSTRAP=1
export ASAN_OPTIONS=allocator_may_return_null=1
status=0
for target in $targets; do
  work=$(mktemp -d)
  cp -r "fuzz/corpus/$target/." "$work/"
  echo "== $target, $seconds s"
  cargo fuzz run --dev "$target" "$work" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 2>&1 | grep -vE '^\s+(#[0-9]+ |[0-9]+: |at )' | tail -40
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  echo "corpus after the run: $(ls "$work" | wc -l) inputs"
  rm -rf "$work"
done
exit $status
