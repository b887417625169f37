#!/usr/bin/env bash
# The long fuzzing run: every cargo-fuzz (libFuzzer) target in fuzz/ for N seconds each
# (default 20), growing the committed corpus, then minimising it again.
#
#   scripts/fuzz.sh          # 20 s per target
#   scripts/fuzz.sh 600      # 10 min per target
#
# (`scripts/test` runs the short, read-only version: scripts/fuzz-ci.sh.)
#
# Only stable Rust is installed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass the sanitizer flags
# that are nightly-only. Each target starts from fuzz/corpus/<target> (committed) and
# fuzz/seeds/<target>; what it finds is added to fuzz/corpus/<target>. After the runs each
# corpus is minimised back to the smallest set of inputs that still reaches every edge the
# larger one reached (libFuzzer -set_cover_merge=1 on edges alone, seeds left out): commit the
# resulting fuzz/corpus/ to keep it. A crash is written to fuzz/artifacts/<target>/ and
# reproduced with
#   CFLAGS=-O0 RUSTC_BOOTSTRAP=1 cargo fuzz run <target> artifacts/<target>/crash-…   (from fuzz/)
# Exits non-zero when any target found a crash (the corpus is then left as the run left it).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
fuzz_dir="$PWD"
seconds="${1:-20}"

# Same pin as scripts/fuzz-ci.sh.
cargo_fuzz_version=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$fuzz_dir/target}"  # as scripts/fuzz-ci.sh
# The one C library in the build, the SQLite that diandan-runtime bundles, is compiled without
# optimisation: no target calls it, and at -O3 it is minutes of a cold build. (Last flag wins;
# the same in scripts/fuzz.sh and scripts/fuzz-ci.sh, so they share one build.)
export CFLAGS="${CFLAGS:+$CFLAGS }-O0"

cargo fuzz build
failed=()
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target" "seeds/$target"
  echo "== $target: ${seconds} s"
  if ! cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]} (see fuzz/artifacts/)" >&2
  exit 1
fi

# Minimise: coverage of edges only (no hit counts), a greedy set cover, so the committed corpus
# stays at a few hundred small files per target. Inputs identical to a seed are dropped.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"
bin_dir="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"
for target in $(cargo fuzz list); do
  merged="$(mktemp -d)"
  "$bin_dir/$target" -set_cover_merge=1 -use_counters=0 -use_cmp=0 \
    "$merged" "corpus/$target" "seeds/$target" 2>"$merged.log" ||
    { cat "$merged.log" >&2; echo "fuzz: minimising $target failed" >&2; exit 1; }
  for seed in "seeds/$target"/*; do
    [ -f "$seed" ] && rm -f "$merged/$(sha1sum "$seed" | cut -d' ' -f1)"
  done
  rm -rf "corpus/$target" "$merged.log"
  mv "$merged" "corpus/$target"
  chmod 755 "corpus/$target"
  echo "fuzz: corpus/$target: $(find "corpus/$target" -type f | wc -l) inputs," \
    "$(cat "corpus/$target"/* 2>/dev/null | wc -c) bytes"
done
echo "fuzz: no crash in any target (${seconds} s each); fuzz/corpus/ minimised"
