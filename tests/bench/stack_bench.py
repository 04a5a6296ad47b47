#!/usr/bin/env python3
"""Each controller's no-op reconcile on the whole foundation stack
(tests/e2e/test_stack.py's spec: OpenBao, SeaweedFS, PostgreSQL, a consumer,
the forge), with the cheapest request to each peer measured in the same run
as its floor:

  docker    one GET /containers/json over the Engine's socket (in-process)
  vault     one GET /v1/sys/seal-status (in-process)
  buckets   one ListBuckets signed by curl's SigV4 (curl's start included)
  postgres  one `docker exec psql -c 'SELECT 1'`
  forgejo   one `docker exec forgejo actions generate-runner-token`

foundationd's figures are the "Time per step" of `foundationd apply --once`
on the converged stack (process start and unlock not included in a step),
and the whole converge against the sum of its steps (less when steps ran at
once: Vault, the buckets and PostgreSQL do).

Usage (scripts/test exports the images; FOUNDATIOND_BIN is the built binary):
  FOUNDATIOND_BIN=build/daemon/foundationd FOUNDATIOND_TEST_IMAGE=... \\
  FOUNDATIOND_OPENBAO_IMAGE=... FOUNDATIOND_S3_IMAGE=... \\
  FOUNDATIOND_POSTGRES_IMAGE=... FOUNDATIOND_FORGEJO_IMAGE=... \\
  tests/bench/stack_bench.py [--rounds 10]
"""
import argparse
import http.client
import os
import pathlib
import re
import socket
import statistics
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))

from conftest import Project  # noqa: E402
from test_stack import Stack, timings  # noqa: E402
from timing import run_timed  # noqa: E402

STEPS = ["credentials", "docker", "vault", "buckets", "postgres", "forgejo"]


def timed(cmd):
    dt, code, _, err = run_timed(cmd, timeout=120)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}...: {err}")
    return dt * 1000


def timed_http(conn, path):
    t = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    r.read()
    ms = (time.perf_counter() - t) * 1000
    conn.close()
    if r.status != 200:
        raise SystemExit(f"GET {path}: {r.status}")
    return ms


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def floors(stack):
    key, secret = stack.secret("s3-root.accessKey"), stack.secret("s3-root.secretKey")
    cfg = stack.tmp / "bench-curl.cfg"
    cfg.write_text(f'user = "{key}:{secret}"\n')
    os.chmod(cfg, 0o600)
    return {
        "docker": timed_http(UnixHTTPConnection("/var/run/docker.sock"), "/containers/json"),
        "vault": timed_http(http.client.HTTPConnection("127.0.0.1", stack.bao_port, timeout=30),
                            "/v1/sys/seal-status"),
        "buckets": timed(["curl", "-sf", "-o", "/dev/null", "-K", str(cfg), "--aws-sigv4",
                          "aws:amz:us-east-1:s3", f"http://127.0.0.1:{stack.s3_port}/"]),
        "postgres": timed(["docker", "exec", "-u", "postgres", stack.pg, "psql", "-X", "-At",
                           "-c", "SELECT 1"]),
        "forgejo": timed(["docker", "exec", "-u", "git", stack.forge, "forgejo", "actions",
                          "generate-runner-token"]),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    fd_bin = os.environ.get("FOUNDATIOND_BIN")
    image = os.environ.get("FOUNDATIOND_TEST_IMAGE")
    if not fd_bin or not image:
        raise SystemExit("FOUNDATIOND_BIN and FOUNDATIOND_TEST_IMAGE must be set (see --help)")
    with tempfile.TemporaryDirectory() as tmp:
        project = Project(fd_bin, image, pathlib.Path(tmp))
        stack = Stack(project, pathlib.Path(tmp))
        try:
            stack.init()
            t = time.perf_counter()
            stack.apply()
            day_zero = time.perf_counter() - t
            ours = {s: [] for s in STEPS}
            whole = []
            converge, summed = [], []
            theirs = {s: [] for s in STEPS if s != "credentials"}
            for _ in range(args.rounds):
                t = time.perf_counter()
                out = stack.apply()
                whole.append((time.perf_counter() - t) * 1000)
                if "nothing to change" not in out:
                    raise SystemExit("not a no-op:\n" + out)
                for k, v in timings(out).items():
                    ours[k].append(v)
                m = re.search(r"\(the whole converge: (\d+) ms\)", out)
                if m:  # a build before 2026-12-04 does not print it
                    converge.append(int(m.group(1)))
                    summed.append(sum(timings(out).values()))
                for k, v in floors(stack).items():
                    theirs[k].append(v)
        finally:
            stack.cleanup()
            project.cleanup()
    print(f"day zero (apply --once from nothing, 5 containers, Vault init): {day_zero:.1f} s")
    print(f"no-op `apply --once`, whole process: median {statistics.median(whole):.0f} ms "
          f"({args.rounds} rounds)")
    if converge:
        c, t = statistics.median(converge), statistics.median(summed)
        print(f"the whole converge: median {c:.0f} ms; the sum of its steps {t:.0f} ms "
              f"({c / t:.2f} of it: steps at once)" if t else f"the whole converge: {c:.0f} ms")
    print(f"{'step':<12}{'median ms':>10}{'p90 ms':>8}   {'floor: one request to the peer':<34}"
          f"{'median ms':>10}{'ratio':>7}")
    for s in STEPS:
        v = sorted(ours[s])
        med, p90 = statistics.median(v), v[min(len(v) - 1, int(0.9 * len(v)))]
        if s in theirs:
            f = statistics.median(theirs[s])
            what = {"docker": "GET /containers/json", "vault": "GET /v1/sys/seal-status",
                    "buckets": "ListBuckets (SigV4)", "postgres": "docker exec psql SELECT 1",
                    "forgejo": "docker exec generate-runner-token"}[s]
            print(f"{s:<12}{med:>10.0f}{p90:>8.0f}   {what:<34}{f:>10.0f}{med / f:>7.1f}")
        else:
            print(f"{s:<12}{med:>10.0f}{p90:>8.0f}   (no peer: the state only)")


if __name__ == "__main__":
    main()
