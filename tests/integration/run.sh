#!/usr/bin/env bash
# The integration suites, one after another, each in its own jest: a suite that fails does not stop the
# others (one run reports every suite), --forceExit and a per-suite time limit make a suite that hangs fail
# with its name instead of running into CI's own limit, and a summary line per suite gives its time.
#
# One at a time on purpose: two suites at once on a 2-core machine (tried: load average 19, most of it the
# nodes' awscli processes) starved the Sentinel suite until its writer could not start in 20 s, and the
# failover figures the suites assert at their numbers are only true on an uncontended machine.
#
# With arguments, runs just those suites in one jest: npm run test:integration -- tests/integration/x.test.ts
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/../.."
readonly JEST=(npx jest --runInBand --forceExit)
if [ "$#" -gt 0 ]; then exec "${JEST[@]}" "$@"; fi

# Short suites first: a broken lab shows in minutes. Every suite on disk must be listed (none skipped).
readonly SUITES=(hosts awsEndpoint sentinel cluster lifecycle)
# A suite's limit: the longest (lifecycle, which also runs the faults, backups and day 2 on its one lab)
# takes about 35 minutes.
readonly SUITE_LIMIT=${SUITE_LIMIT:-50m}

mapfile -t on_disk < <(find tests/integration -name '*.test.ts' -printf '%f\n' | sed 's/\.test\.ts$//' | sort)
mapfile -t listed < <(printf '%s\n' "${SUITES[@]}" | sort)
if [ "${on_disk[*]}" != "${listed[*]}" ]; then
  echo "run.sh: SUITES (${listed[*]}) are not the suites on disk (${on_disk[*]}); list each suite once" >&2
  exit 1
fi

# Each suite's results as JSON too: the failed tests and their messages are printed last (lab/jestFailures.ts),
# where the end of a CI log shows them.
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
started=$SECONDS
failed=()
summary=()
for s in "${SUITES[@]}"; do
  t0=$SECONDS
  if timeout --kill-after=30s "$SUITE_LIMIT" "${JEST[@]}" --json --outputFile="$results/$s.json" "tests/integration/$s.test.ts"; then
    summary+=("$s: passed in $((SECONDS - t0)) s")
  else
    summary+=("$s: FAILED after $((SECONDS - t0)) s")
    failed+=("$s")
  fi
done
printf 'integration: %s\n' "${summary[@]}"
echo "integration: $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s in all"
if [ "${#failed[@]}" -gt 0 ]; then
  files=()
  for s in "${failed[@]}"; do files+=("$results/$s.json"); done
  npx ts-node --transpile-only lab/jestFailures.ts "${files[@]}" || true
  echo "integration: FAILED: ${failed[*]}" >&2
  exit 1
fi
