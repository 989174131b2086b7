#!/usr/bin/env bash
# Mutation testing of the parts of sse-core that decide what goes on the wire — request, encode,
# error, app, hub, fanout and the two event logs — with cargo-mutants. Each mutant is one
# plausible bug put into the code (a condition negated, `<` made `<=`, a function returning a
# default); a mutant no test notices is a rule the tests do not hold.
#
#   stage 1  every mutant against sse-core's own tests (both event logs, a redis-server each);
#   stage 2  the mutants stage 1 missed, against the whole conformance suite on axum-example
#            (memory log, and the shared log for the Redis log's mutants) and conformance's
#            hostile-payload tests, which call sse-core's encoder and parser directly.
#
# Then writes docs/mutants/report.md: the score, a table per file, every mutant still missed.
# Mutants no client can tell from the original are excluded, each with its reason, in
# .cargo/mutants.toml; docs/mutants/README.md says what was done about the others.
#
# Not part of scripts/test.sh: it is long. On the 2-core reference machine stage 1 takes about
# 50 minutes (two jobs), stage 2 about 2 minutes per mutant it tests (one job: the suite's
# timing checks want the machine to themselves); --again, a few minutes.
#
#   scripts/mutants.sh                 both stages, from scratch
#   scripts/mutants.sh --stage 1       one stage (stage 2 reads stage 1's results)
#   scripts/mutants.sh --again         test again only what the last runs missed (after adding
#                                      tests); results are merged into the earlier ones
#   scripts/mutants.sh --stage report  only write the report
# Other arguments go to cargo-mutants (e.g. `-f sse-core/src/encode.rs`). Needs redis-server;
# installs cargo-mutants from crates.io if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/examples.sh

stages=(1 2)
again=false
args=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --stage) stages=("$2"); shift 2 ;;
    --again) again=true; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done

command -v redis-server >/dev/null || { echo "error: scripts/mutants.sh needs redis-server (apt-get install redis-server)" >&2; exit 1; }
if ! cargo mutants --version >/dev/null 2>&1; then
  echo "installing cargo-mutants from crates.io …"
  cargo install --locked cargo-mutants
fi

out=target/mutants
lists=(caught missed timeout unviable)
files=(
  -p sse-core
  -f sse-core/src/request.rs -f sse-core/src/encode.rs -f sse-core/src/error.rs
  -f sse-core/src/app.rs -f sse-core/src/hub.rs -f sse-core/src/fanout.rs
  -f 'sse-core/src/log/*.rs'
)
common=(--no-shuffle "${files[@]}" "${args[@]}")
status=0

# Merges a run's lists (one mutant a line, "file:line:col: what") into a stage's results: a
# mutant tested again takes its new outcome.
merge() {
  local run="$1/mutants.out" results="$2"
  mkdir -p "$results"
  for list in "${lists[@]}"; do touch "$results/$list.txt" "$run/$list.txt"; done
  (cd "$run" && cat "${lists[@]/%/.txt}") | sort -u > "$results/.tested"
  for list in "${lists[@]}"; do
    { grep -vxFf "$results/.tested" "$results/$list.txt" || true; cat "$run/$list.txt"; } \
      | sort -u > "$results/.$list" && mv "$results/.$list" "$results/$list.txt"
  done
  rm -f "$results/.tested"
}

# Lets a cargo-mutants run in `dir` skip what `skip` lists (--iterate skips what the run's
# output dir lists as caught before).
skip_these() {
  local dir="$1" skip="$2"
  rm -rf "$dir/mutants.out"
  mkdir -p "$dir/mutants.out"
  cp "$skip" "$dir/mutants.out/previously_caught.txt"
}

# The mutants of the code as it is now.
listing() {
  cargo mutants --list "${common[@]}"
}

stage1() {
  echo "== stage 1: against sse-core's tests"
  local run="$out/unit/run"
  if $again; then
    # What is known caught (or unviable) is skipped; what was missed, or is new (code that
    # moved or changed), is tested.
    local results="$out/unit/results"
    cat "$results/caught.txt" "$results/timeout.txt" "$results/unviable.txt" \
      "$out"/conformance/results/{caught,timeout}.txt > "$out/unit/known.txt" 2>/dev/null || true
    skip_these "$run" "$out/unit/known.txt"
  else
    rm -rf "$out/unit"
    mkdir -p "$run"
  fi
  # Two jobs: while one mutant links, the other's tests run (each has its own copy of the tree
  # and target directory). The shared log's 18 s race test is left to stage 2 (the conformance
  # suite races resumes against publishing too); its memory-log twin runs here.
  cargo mutants "${common[@]}" --jobs 2 --timeout-multiplier 3 --minimum-test-timeout 120 \
    -o "$run" --iterate --test-package sse-core \
    -- -- --skip 'hub::tests::redis::resume_joins_replay_and_live_exactly_under_concurrent_publishing' \
    || status=$?
  merge "$run" "$out/unit/results"
}

stage2() {
  [ -f "$out/unit/results/missed.txt" ] || { echo "error: stage 2 needs stage 1's results in $out/unit" >&2; exit 1; }
  echo "== stage 2: what stage 1 missed, against the conformance suite on axum-example"
  local todo="$out/conformance/todo.txt"
  mkdir -p "$out/conformance"
  if $again && [ -f "$out/conformance/results/missed.txt" ]; then
    cp "$out/conformance/results/missed.txt" "$todo"
  else
    rm -rf "$out/conformance/results"
    cp "$out/unit/results/missed.txt" "$todo"
  fi
  # The Redis log's mutants on the shared log, the others on the memory log.
  local kind other_log skip
  for kind in memory redis; do
    if [ "$kind" = redis ]; then
      other_log=on_the_memory_log; grep '^sse-core/src/log/redis.rs:' "$todo" > "$todo.$kind" || true
    else
      other_log=on_a_shared_redis_log; grep -v '^sse-core/src/log/redis.rs:' "$todo" > "$todo.$kind" || true
    fi
    [ -s "$todo.$kind" ] || continue
    skip=(--skip "$other_log")
    for other in "${packages[@]}"; do
      [ "$other" = axum-example ] || skip+=(--skip "${other//-/_}")
    done
    listing | grep -vxFf "$todo.$kind" > "$out/conformance/skip.$kind" || true
    skip_these "$out/conformance/$kind" "$out/conformance/skip.$kind"
    cargo mutants "${common[@]}" --jobs 1 --baseline skip --timeout 900 \
      -o "$out/conformance/$kind" --iterate --test-package conformance \
      -- --test examples --test hostile_payloads -- "${skip[@]}" \
      || status=$?
    merge "$out/conformance/$kind" "$out/conformance/results"
  done
}

# docs/mutants/report.md from the two stages' results.
report() {
  local unit="$out/unit/results" conf="$out/conformance/results" md=docs/mutants/report.md
  [ -f "$unit/caught.txt" ] || { echo "no results in $out/unit yet" >&2; return 0; }
  mkdir -p "$conf" docs/mutants
  for list in "${lists[@]}"; do touch "$conf/$list.txt"; done
  local all="$out/all.txt" missed="$out/missed.txt"
  # Only the mutants of the code as it is now: a result for code that has moved since is
  # stale, and what .cargo/mutants.toml excludes is not listed (also if an earlier run tested
  # it); one never tested is reported as such.
  local now="$out/listing.txt"
  listing | sort -u > "$now"
  for list in "${lists[@]}"; do
    for dir in "$unit" "$conf"; do
      grep -xFf "$now" "$dir/$list.txt" > "$dir/.$list" || true
      mv "$dir/.$list" "$dir/$list.txt"
    done
  done
  (cd "$unit" && cat "${lists[@]/%/.txt}") | sort -u > "$all"
  local untested="$out/untested.txt"
  grep -vxFf "$all" "$now" > "$untested" || true
  { grep -vxFf <(cat "$conf/caught.txt" "$conf/timeout.txt" "$conf/unviable.txt") "$unit/missed.txt" || true; } \
    | sort -u > "$missed"
  count() { grep -c "^$1:" "$2" 2>/dev/null || true; }
  {
    echo "# Mutation testing of sse-core: the last run"
    echo
    echo "Written by \`scripts/mutants.sh\` on $(date -u +%F) at commit $(git rev-parse --short HEAD)"
    echo "($(cargo mutants --version)). How to read it, and what was done about each mutant"
    echo "that survived: [README.md](README.md). Mutants excluded as equivalent, each with its"
    echo "reason: \`.cargo/mutants.toml\` (they are not counted here)."
    echo
    echo "| file | mutants | unviable | caught by sse-core's tests | caught by the conformance suite | missed |"
    echo "|---|---:|---:|---:|---:|---:|"
    local file t=0 u=0 c1=0 c2=0 m=0 n un k1 k2 mi
    for file in $(cut -d: -f1 "$all" | sort -u); do
      n=$(count "$file" "$all"); un=$(count "$file" "$unit/unviable.txt")
      k1=$(( $(count "$file" "$unit/caught.txt") + $(count "$file" "$unit/timeout.txt") ))
      k2=$(( $(count "$file" "$conf/caught.txt") + $(count "$file" "$conf/timeout.txt") ))
      mi=$(count "$file" "$missed")
      echo "| \`$file\` | $n | $un | $k1 | $k2 | $mi |"
      t=$((t + n)); u=$((u + un)); c1=$((c1 + k1)); c2=$((c2 + k2)); m=$((m + mi))
    done
    echo "| **all** | **$t** | **$u** | **$c1** | **$c2** | **$m** |"
    echo
    local viable=$((t - u))
    echo "Score: $((c1 + c2)) of $viable viable mutants caught ($(( viable ? 1000 * (c1 + c2) / viable : 0 )) ‰);"
    echo "sse-core's own tests alone catch $c1 ($(( viable ? 1000 * c1 / viable : 0 )) ‰). A mutant that"
    echo "makes a test hang until cargo-mutants' time-out counts as caught."
    echo
    echo "## Missed"
    echo
    if [ -s "$missed" ]; then sed 's/^/- `/; s/$/`/' "$missed"; else echo "None."; fi
    if [ -s "$untested" ]; then
      echo
      echo "## Not tested yet (\`scripts/mutants.sh --again\` tests them)"
      echo
      sed 's/^/- `/; s/$/`/' "$untested"
    fi
  } > "$md"
  echo "report: $md"
}

for stage in "${stages[@]}"; do
  case "$stage" in
    1) stage1 ;;
    2) stage2 ;;
    report) ;;
    *) echo "error: --stage is 1, 2 or report, not $stage" >&2; exit 2 ;;
  esac
done
report
echo "cargo-mutants exit $status (0 all caught, 2 some missed, 3 some timed out)"
