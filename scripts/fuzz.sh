#!/usr/bin/env bash
# Runs every cargo-fuzz (libFuzzer) target in fuzz/ for N seconds each (default 20).
#
#   scripts/fuzz.sh          # 20 s per target
#   scripts/fuzz.sh 300      # 5 min per target
#
# Only stable Rust is installed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass the sanitizer flags
# that are nightly-only. Inputs found are kept in fuzz/corpus/<target> (seeded from
# fuzz/seeds/<target>); a crash is written to fuzz/artifacts/<target>/ and reproduced with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/crash-…   (from fuzz/)
# Exits non-zero when any target found a crash.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-20}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

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
echo "fuzz: no crash in any target (${seconds} s each)"
