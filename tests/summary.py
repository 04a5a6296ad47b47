#!/usr/bin/env python3
"""Sums the test cases of every suite from meson's testlog.json and prints
the closing line "tests: N passed, N failed" (doctest and pytest counts, not
just executables). A skipped test case is a failure in CI (CI=true).
More testlogs (the sanitizer builds') may follow the first; their tests are
named "<build dir>/<test>", and a missing one counts as a failure."""
import argparse
import json
import os
import re
import sys

DOCTEST = re.compile(r"test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed\s*\|\s*(\d+) skipped")
PYTEST_PARTS = re.compile(r"(\d+) (passed|failed|skipped|error|errors)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("testlog", nargs="+")
    ap.add_argument("--fuzz-status", type=int, default=0)
    args = ap.parse_args()
    passed = failed = skipped = 0
    for index, testlog in enumerate(args.testlog):
        # .../build-asan/meson-logs/testlog.json -> "build-asan/"
        builddir = os.path.dirname(os.path.dirname(os.path.abspath(testlog)))
        prefix = "" if index == 0 else os.path.basename(builddir) + "/"
        try:
            lines = open(testlog, encoding="utf-8").read().splitlines()
        except OSError as e:
            print(f"summary: cannot read {testlog}: {e}")
            failed += 1
            continue
        for line in lines:
            if not line.strip():
                continue
            t = json.loads(line)
            out = t.get("stdout", "") or ""
            name, result = prefix + str(t.get("name")), t.get("result")
            m = None
            for m in DOCTEST.finditer(out):
                pass
            if m:
                p, f, s = int(m.group(2)), int(m.group(3)), int(m.group(4))
            else:
                counts = {}
                tail = out.strip().splitlines()[-1:] or [""]
                for n, kind in PYTEST_PARTS.findall(tail[0]):
                    counts[kind] = counts.get(kind, 0) + int(n)
                p = counts.get("passed", 0)
                f = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
                s = counts.get("skipped", 0)
            if result not in ("OK", "EXPECTEDFAIL") and f == 0:
                f = 1  # the executable failed (crash, timeout) without counting
            elif result == "OK" and p == f == s == 0:
                p = 1  # a check that reports by exit code alone (e.g. the unit's exposure)
            print(f"  {name}: {result} ({p} passed, {f} failed, {s} skipped)")
            passed, failed, skipped = passed + p, failed + f, skipped + s
    if args.fuzz_status != 0:
        print("  fuzz: FAIL")
        failed += 1
    else:
        for target in ("spec", "http"):
            if os.path.isfile(f"build-fuzz/fuzz-{target}.log"):
                passed += 1
    if skipped and os.environ.get("CI") == "true":
        print(f"  {skipped} skipped test(s): a skip in CI is a failure")
        failed += skipped
        skipped = 0
    line = f"tests: {passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
