#!/usr/bin/env bash
# Fails when the unit's `systemd-analyze security --offline=true` exposure is
# above the target (INTERFACES.md "systemd": <= 2.0). Prints the analysis.
#   tests/units/check_exposure.sh [UNIT_FILE] [MAX]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
unit="${1:-$here/../../units/foundationd.service}"
max="${2:-2.0}"

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "check_exposure: systemd-analyze not found; apt-get install systemd" >&2
  exit 1
fi
if [[ ! -f "$unit" ]]; then
  echo "check_exposure: no unit file at $unit" >&2
  exit 1
fi

# --offline needs the unit in a directory of its own name; the unit's
# relative paths do not matter offline. A non-zero status only means "above
# --threshold" (default 100), so the score is what we check.
out="$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1)" || true
echo "$out"
line="$(grep -E 'Overall exposure level' <<<"$out" | tail -n 1 || true)"
score="$(sed -nE 's/.*Overall exposure level for [^:]*: ([0-9]+(\.[0-9]+)?).*/\1/p' <<<"$line")"
if [[ -z "$score" ]]; then
  echo "check_exposure: no \"Overall exposure level\" in the output above" >&2
  exit 1
fi
if awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
  echo "check_exposure: FAIL: exposure $score is above $max" >&2
  exit 1
fi
echo "check_exposure: ok: exposure $score <= $max"
