#!/usr/bin/env bash
# The bounded fuzzing step of `scripts/test`: builds every cargo-fuzz (libFuzzer) target in
# fuzz/ once, then runs each for N seconds (default 10) over the committed corpus
# (fuzz/corpus/<target>) and the seeds (fuzz/seeds/<target>). Both are read only: what the
# run finds goes to a temp dir that is thrown away, so CI never writes into the repo's corpus
# (`scripts/fuzz.sh` is the long run that grows and re-minimises it).
#
#   scripts/fuzz-ci.sh        # 10 s per target
#   scripts/fuzz-ci.sh 30     # 30 s per target
#
# A crash (panic, sanitizer report, timeout of one input > 10 s, > 2 GiB RSS) is written to
# fuzz/artifacts/<target>/; the script names the target and the file, prints the input in
# base64 (the CI log is enough to get it back), and exits non-zero after running every
# target. Replay from fuzz/ (CFLAGS as below, so the build is reused):
#   CFLAGS=-O0 RUSTC_BOOTSTRAP=1 cargo fuzz run <target> artifacts/<target>/crash-…
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
fuzz_dir="$PWD"
seconds="${1:-10}"

# Pinned, and kept in ~/.cargo/bin: installed (~1 min) only when missing or another version.
# Same pin as scripts/fuzz.sh.
cargo_fuzz_version=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi
# Only stable Rust is installed: this lets cargo-fuzz pass its nightly-only sanitizer flags.
export RUSTC_BOOTSTRAP=1
# fuzz/target, cargo-fuzz's own default, said explicitly so an outer CARGO_TARGET_DIR does not
# mix the instrumented build into the workspace's; scripts/fuzz.sh shares it. FUZZ_TARGET_DIR
# may point it elsewhere (a directory kept between fresh clones makes the build incremental).
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$fuzz_dir/target}"
# The one C library in the build, the SQLite that diandan-runtime bundles, is compiled without
# optimisation: no target calls it, and at -O3 it is minutes of a cold build. (Last flag wins;
# the same in scripts/fuzz.sh and scripts/fuzz-ci.sh, so they share one build.)
export CFLAGS="${CFLAGS:+$CFLAGS }-O0"
# What `cargo fuzz run` sets (the bundled SQLite trips ASan's ODR check otherwise).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

host="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$CARGO_TARGET_DIR/$host/release"
start=$SECONDS
# One build of every target: release with debug assertions and ASan, as `cargo fuzz run` does.
cargo fuzz build --target "$host"
echo "fuzz-ci: built the fuzz targets in $((SECONDS - start)) s"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in $(cargo fuzz list); do
  mkdir -p "$scratch/$target" "artifacts/$target"
  corpus=()
  for dir in "corpus/$target" "seeds/$target"; do
    [ -d "$dir" ] && corpus+=("$dir")
  done
  echo "== fuzz-ci: $target, ${seconds} s over ${corpus[*]}"
  touch "$scratch/$target.start"
  # The first corpus dir is the only one libFuzzer writes to: the scratch one. The outer
  # timeout only guards against a fuzzer that never stops.
  if ! timeout --kill-after=10 $((seconds + 120)) "$bin_dir/$target" \
      -artifact_prefix="artifacts/$target/" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "$scratch/$target" "${corpus[@]}"; then
    failed+=("$target")
    found=0
    while IFS= read -r -d '' artifact; do
      found=1
      echo "fuzz-ci: $target failed on fuzz/$artifact ($(wc -c <"$artifact") bytes)" >&2
      if [ "$(wc -c <"$artifact")" -le 65536 ]; then
        echo "fuzz-ci: input (base64): $(base64 -w0 "$artifact")" >&2
      fi
      echo "fuzz-ci: replay: cd fuzz && CFLAGS=-O0 RUSTC_BOOTSTRAP=1 cargo fuzz run $target $artifact" >&2
    done < <(find "artifacts/$target" -type f -newer "$scratch/$target.start" -print0)
    [ "$found" = 1 ] || echo "fuzz-ci: $target failed without an artifact (see its output above)" >&2
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz-ci: FAILED: ${failed[*]} (artifacts under fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz-ci: no crash in any target (${seconds} s each; $((SECONDS - start)) s with the build)"
