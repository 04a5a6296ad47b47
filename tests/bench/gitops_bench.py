#!/usr/bin/env python3
"""GitOps benchmark (TESTING.md "Benchmarks, not timed tests"): prints figures,
asserts nothing about time.

1. push -> converged: a one-container change (its command) committed and
   `git push`ed to a real git server (git http-backend, token auth); the
   post-receive hook delivers the signed webhook; timed until the daemon's
   status shows the commit applied and Docker runs the new container.
   Median and p90 of N runs (default 10), plus the push alone.
2. webhook burst: a new commit pushed with the hook silenced, then 100 signed
   deliveries (distinct ids) announcing it, sent by 8 threads at once: how
   many fetches and reconciles they caused, and the handling throughput.

  FOUNDATIOND_BIN=build/daemon/foundationd \\
  FOUNDATIOND_TEST_IMAGE=$(tests/peers/busybox-image) \\
  python3 tests/bench/gitops_bench.py [--runs 10] [--burst 100]
"""
import argparse
import concurrent.futures
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))

from conftest import Project  # noqa: E402
from test_gitops import GitOps, ONE  # noqa: E402


def web(arg):
    return ONE.replace('"3600"', f'"{arg}"')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--burst", type=int, default=100)
    args = ap.parse_args()
    bin_ = os.environ["FOUNDATIOND_BIN"]
    image = os.environ["FOUNDATIOND_TEST_IMAGE"]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="fd-gitops-bench-"))
    project = Project(bin_, image, tmp)
    g = GitOps(project, tmp)
    try:
        first = g.push(web(3600), "start")
        g.start()
        g.wait(lambda: g.status()["spec"]["applied_revision"] == first, "the first revision")

        # 1. push -> converged
        totals, pushes = [], []
        for i in range(args.runs):
            arg = 4000 + i
            with open(os.path.join(g.work, "foundation.toml"), "w") as f:
                f.write(g.spec(web(arg)))
            g.git("commit", "-q", "-am", f"run {i}")
            commit = g.git("rev-parse", "HEAD")
            t0 = time.monotonic()
            g.git("push", "-q", "origin", "HEAD:refs/heads/main")
            t1 = time.monotonic()

            def done():
                if g.status()["spec"]["applied_revision"] != commit:
                    return False
                c = project.container("web")
                return c is not None and c["State"]["Running"] and c["Config"]["Cmd"][-1] == str(arg)

            g.wait(done, f"run {i} converged", timeout=120)
            totals.append(time.monotonic() - t0)
            pushes.append(t1 - t0)
        totals.sort()
        p90 = totals[min(len(totals) - 1, int(round(0.9 * (len(totals) - 1))))]
        print(f"push -> converged (one-container change, {args.runs} runs): "
              f"median {statistics.median(totals) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, "
              f"min {totals[0] * 1000:.0f} ms, max {totals[-1] * 1000:.0f} ms; "
              f"of which `git push` itself: median {statistics.median(pushes) * 1000:.0f} ms")

        # 2. burst of deliveries for one new commit
        hook_cfg = os.path.join(g.bare, "webhook.json")
        saved = open(hook_cfg).read()
        os.remove(hook_cfg)  # this push delivers nothing by itself
        with open(os.path.join(g.work, "foundation.toml"), "w") as f:
            f.write(g.spec(web(5000)))
        g.git("commit", "-q", "-am", "burst")
        commit = g.git("rev-parse", "HEAD")
        g.git("push", "-q", "origin", "HEAD:refs/heads/main")
        with open(hook_cfg, "w") as f:
            f.write(saved)
        fetches0 = g.metric("foundationd_spec_fetches_total")
        reconciles0 = g.metric("foundationd_reconcile_total")
        payload = {"ref": "refs/heads/main", "before": "0" * 40, "after": commit,
                   "repository": {"full_name": "olsitec/foundation"}}
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: g.deliver(payload, delivery=str(uuid.uuid4()))[0],
                                  range(args.burst)))
        handled = time.monotonic() - t0
        g.wait(lambda: g.status()["spec"]["applied_revision"] == commit, "the burst's commit applied")
        converged = time.monotonic() - t0
        time.sleep(2)  # let anything the burst queued run
        fetches = g.metric("foundationd_spec_fetches_total") - fetches0
        reconciles = g.metric("foundationd_reconcile_total") - reconciles0
        accepted = sum(1 for c in codes if c == 202)
        print(f"webhook burst: {args.burst} deliveries of one push ({accepted} answered 202, "
              f"others {sorted(set(c for c in codes if c != 202))}) in {handled * 1000:.0f} ms "
              f"= {args.burst / handled:.0f} deliveries/s; caused {fetches:.0f} fetch(es) and "
              f"{reconciles:.0f} reconcile(s); converged {converged * 1000:.0f} ms after the first")
    finally:
        g.close()
        project.cleanup()


if __name__ == "__main__":
    main()
