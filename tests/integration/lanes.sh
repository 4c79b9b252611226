#!/usr/bin/env bash
# The integration suites in two lanes at once (CI's budget is 45 minutes; one after another they take
# about 70). Each lane runs its suites one after another, each in its own jest; a lane does not stop at a
# failure, so one run reports every suite. The hosts' root filesystem is built once (ensureRootfs locks).
# With arguments, runs just those suites in one jest: npm run test:integration -- tests/integration/x.test.ts
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/../.."
# --forceExit: a failed test that leaves a socket open must fail its suite, not hang the lane.
readonly JEST=(npx jest --runInBand --forceExit)

# lane NAME SUITE...: the suites one after another; prints one summary line per suite; fails if any failed.
lane() {
  local name=$1 failed=() s started
  shift
  for s in "$@"; do
    started=$SECONDS
    if "${JEST[@]}" "tests/integration/$s.test.ts" 2>&1 | sed -u "s/^/[$name] /"; then
      echo "[$name] lane: $s passed in $((SECONDS - started)) s"
    else
      echo "[$name] lane: $s FAILED after $((SECONDS - started)) s"
      failed+=("$s")
    fi
  done
  [ "${#failed[@]}" -eq 0 ] || { echo "[$name] lane: failed: ${failed[*]}"; return 1; }
}

if [ "${1:-}" = --lane ]; then
  shift
  lane "$@"
  exit
fi
if [ "$#" -gt 0 ]; then exec "${JEST[@]}" "$@"; fi

# Lane a: long day-2 scenarios, then the short suites. Lane b: the fault and failover suites.
readonly LANE_A=(lifecycle hosts awsEndpoint backup)
readonly LANE_B=(sentinel cluster faults)
# A lane's limit, so a suite that hangs fails the run with its name instead of CI's own timeout.
readonly LANE_LIMIT=${LANE_LIMIT:-65m}

# Every suite in exactly one lane: a new suite is not skipped silently.
mapfile -t suites < <(find tests/integration -name '*.test.ts' -printf '%f\n' | sed 's/\.test\.ts$//' | sort)
mapfile -t laned < <(printf '%s\n' "${LANE_A[@]}" "${LANE_B[@]}" | sort)
if [ "${suites[*]}" != "${laned[*]}" ]; then
  echo "lanes.sh: the lanes (${laned[*]}) are not the suites on disk (${suites[*]}); add each suite to one lane" >&2
  exit 1
fi

started=$SECONDS
timeout "$LANE_LIMIT" bash "$self" --lane a "${LANE_A[@]}" &
a=$!
timeout "$LANE_LIMIT" bash "$self" --lane b "${LANE_B[@]}" &
b=$!
rc=0
wait "$a" || rc=1
wait "$b" || rc=1
echo "integration: both lanes done in $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s; $([ "$rc" -eq 0 ] && echo passed || echo FAILED)"
exit "$rc"
