#!/usr/bin/env bash
# Runs what CI runs (`CI=true bash .ci/run`) N times in a row (default 10), each time in a
# fresh clone of the current commit, and reports each run's duration and outcome: passed,
# FAILED, TIMED OUT (a CI step over its limit) or HUNG (tests stopped by the watchdog).
# Use it after any change to the test infrastructure (vitest.config.ts, .ci/run,
# test/helpers, scripts/test-watchdog.ts).
#
# Usage: scripts/test-loop.sh [N]
#   LATCHKEY_LOOP_DIR  where clones and logs go (default: a new directory under $TMPDIR)
#   LATCHKEY_LOOP_KEEP=1  keep every clone (default: only those of runs that did not pass)
# Only committed work is tested (it clones HEAD). Exit status 1 when any run did not pass.
set -uo pipefail

runs="${1:-10}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
commit="$(git -C "$repo" rev-parse HEAD)"
work="${LATCHKEY_LOOP_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/latchkey-test-loop-XXXXXX")}"
mkdir -p "$work"
if [ -n "$(git -C "$repo" status --porcelain)" ]; then
  echo "note: uncommitted changes are not tested; testing ${commit:0:12}" >&2
fi
echo "test loop: $runs runs of CI=true bash .ci/run on ${commit:0:12}, logs in $work"

summary="$work/summary.txt"
: >"$summary"
bad=0
for i in $(seq 1 "$runs"); do
  clone="$work/run-$i"
  log="$work/run-$i.log"
  rm -rf "$clone"
  git clone --quiet --no-checkout "$repo" "$clone" && git -C "$clone" checkout --quiet "$commit"
  start=$(date +%s)
  (cd "$clone" && CI=true bash .ci/run) >"$log" 2>&1
  rc=$?
  secs=$(($(date +%s) - start))
  # .ci/run's last plain line ("N passed, N failed"), when the run got that far.
  counts="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)"
  if [ "$rc" -eq 0 ]; then
    outcome="passed"
  elif grep -q '^test-watchdog: ' "$log"; then
    outcome="HUNG (tests stopped by the watchdog)"
  elif grep -q "^ci: .* did not finish within" "$log"; then
    outcome="TIMED OUT ($(grep -m1 "^ci: .* did not finish within" "$log" | sed 's/^ci: //'))"
  else
    outcome="FAILED (exit $rc)"
  fi
  line="run $i/$runs: $outcome in ${secs}s${counts:+ — $counts}"
  echo "$line" | tee -a "$summary"
  if [ "$outcome" != "passed" ]; then
    bad=$((bad + 1))
    grep -E '^test-watchdog: |^ci: |FAIL ' "$log" | head -n 40 | sed 's/^/    /'
  elif [ "${LATCHKEY_LOOP_KEEP:-0}" != "1" ]; then
    rm -rf "$clone"
  fi
done
echo "test loop: $((runs - bad)) of $runs runs passed (summary: $summary)"
[ "$bad" -eq 0 ]
