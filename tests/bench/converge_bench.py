#!/usr/bin/env python3
"""Converge benchmark: foundationd against docker-compose on the same services.

For N = 10, 30, 100 busybox containers on one network, measures in the same
run, on the same engine:
  - converge from empty:  `foundationd apply --once`  vs  `docker-compose up -d`
  - no-op converge:       the same commands again with nothing to do
and prints medians, the ratios, and the number of Docker API calls of
foundationd's no-op converge (which must not grow with N).

The no-op's floor, measured in the same run: a process start (`/bin/true`;
an empty program linked to the same Debian shared libraries as foundationd,
which is what loading them costs; and `foundationd --version`: the binary's
own start) plus the three list calls a no-op makes, at once, timed in this
process over the Engine's socket. The no-op's ratio to that floor says what
foundationd adds (reading the spec, planning); it should not grow with N.
Needs `cc` and `readelf` for the empty program (Debian's gcc and binutils).

  tests/bench/converge_bench.py --bin build/daemon/foundationd [--sizes 10,30,100] [--runs 5]
Needs a running Docker engine, docker-compose (Debian's), and the busybox
test image (tests/peers/busybox-image).
"""
import argparse
import concurrent.futures
import http.client
import os
import socket
import re
import statistics
import subprocess
import sys
import tempfile
import time

from timing import run_timed

FD_PROJECT = "bench-fd"
COMPOSE_PROJECT = "benchcompose"


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


# docker-compose 1.29 can hang with many services in parallel (seen here at
# N=100 with its default limit); a bounded limit keeps it working.
COMPOSE_ENV = dict(os.environ, COMPOSE_PARALLEL_LIMIT=os.environ.get("COMPOSE_PARALLEL_LIMIT", "8"))


def timed(cmd, **kw):
    kw.setdefault("env", COMPOSE_ENV)
    dt, code, out, err = run_timed(cmd, **kw)
    if code != 0:
        sys.stderr.write(out + err)
        raise SystemExit(f"bench: {' '.join(cmd)} failed with {code}")
    return dt, out


def write_spec(d, n, image):
    with open(os.path.join(d, "VERSIONS"), "w") as f:
        f.write(f'[images]\nbusybox = "{image}"\n')
    with open(os.path.join(d, "bench.toml"), "w") as f:
        f.write(f'spec_version = 1\nproject = "{FD_PROJECT}"\nversions = "VERSIONS"\n')
        f.write("[networks.fdb-net]\n")
        for i in range(n):
            f.write(f'[containers.fdb-{i}]\nimage = "${{versions.busybox}}"\n'
                    f'command = ["sleep", "86400"]\nnetworks = ["fdb-net"]\n'
                    f'restart = "unless-stopped"\nstop_timeout = "1s"\n')
    with open(os.path.join(d, "docker-compose.yml"), "w") as f:
        f.write('version: "2.4"\nservices:\n')
        for i in range(n):
            f.write(f"  svc{i}:\n    image: {image}\n    command: [\"sleep\", \"86400\"]\n"
                    f"    networks: [net]\n    restart: unless-stopped\n    stop_grace_period: 1s\n")
        f.write("networks:\n  net: {}\n")


def clean_fd():
    ids = sh(["docker", "ps", "-aq", "--filter", f"label=foundationd.project={FD_PROJECT}"]).stdout.split()
    if ids:
        sh(["docker", "rm", "-f", *ids])
    sh(["docker", "network", "rm", "fdb-net"], check=False)


def clean_compose(d):
    sh(["docker-compose", "-p", COMPOSE_PROJECT, "-f", os.path.join(d, "docker-compose.yml"),
        "down", "-t", "1"], check=False)


def median(xs):
    return statistics.median(xs)


def engine_get(path):
    conn = http.client.HTTPConnection("localhost", timeout=60)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.connect("/var/run/docker.sock")
    conn.request("GET", "/v1.41" + path)
    r = conn.getresponse()
    r.read()
    conn.close()


LISTS = concurrent.futures.ThreadPoolExecutor(max_workers=3)


def list_calls():
    """The three list calls of a no-op converge, bare, timed in this process:
    issued at once, each on its own connection, as foundationd does."""
    urls = ['/containers/json?all=1&filters={"label":["foundationd.managed=true",'
            f'"foundationd.project={FD_PROJECT}"]}}'.replace('"', "%22").replace(" ", ""),
            "/networks", "/volumes"]
    t0 = time.perf_counter()
    for f in [LISTS.submit(engine_get, u) for u in urls]:
        f.result()
    return time.perf_counter() - t0


def libraries_floor(fd, d):
    """An empty program linked like foundationd to the same shared libraries
    (its DT_NEEDED list, bound at start: -z now): what starting any process
    that uses Debian's libraries costs, before a line of foundationd runs."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", sh(["readelf", "-d", fd]).stdout)
    libs = [f"-l:{n}" for n in needed if not n.startswith(("libc.so", "ld-linux"))]
    out = os.path.join(d, "empty-with-libs")
    sh(["cc", "-x", "c", "-", "-o", out, "-Wl,--no-as-needed", "-Wl,-z,now", *libs],
       input="int main(void) { return 0; }\n")
    return out


def process_floor(cmd, runs):
    return median([timed(cmd)[0] for _ in range(runs)])


def main():
    try:
        run()
    finally:
        # A failed run (an apply that did not converge, an Engine that went
        # away) leaves nothing behind either.
        try:
            clean_fd()
        except Exception as e:  # noqa: BLE001 - best effort, say so
            sys.stderr.write(f"bench: cleanup failed ({e}); remove the containers labelled "
                             f"foundationd.project={FD_PROJECT} and the network fdb-net\n")


def run():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/daemon/foundationd")
    ap.add_argument("--sizes", default="10,30,150")
    ap.add_argument("--runs", type=int, default=5, help="no-op runs per tool and size")
    ap.add_argument("--empty-runs", type=int, default=3, help="from-empty runs per tool and size")
    ap.add_argument("--image", default=os.environ.get("FOUNDATIOND_TEST_IMAGE"))
    ap.add_argument("--no-compose", action="store_true",
                    help="measure foundationd only (docker-compose 1.29 can hang at large N here)")
    args = ap.parse_args()
    nan = float("nan")
    if not args.image:
        args.image = sh(["tests/peers/busybox-image"]).stdout.strip()
    fd = os.path.abspath(args.bin)
    built = tempfile.TemporaryDirectory()
    empty = libraries_floor(fd, built.name)
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as d:
            write_spec(d, n, args.image)
            spec = os.path.join(d, "bench.toml")
            compose = ["docker-compose", "-p", COMPOSE_PROJECT, "-f", os.path.join(d, "docker-compose.yml")]
            fd_apply = [fd, "apply", "--once", "--spec", spec]
            fd_empty, cp_empty, fd_noop, cp_noop, calls = [], [], [], [], set()
            for _ in range(args.empty_runs):
                clean_fd()
                clean_compose(d)
                fd_empty.append(timed(fd_apply)[0])
                cp_empty.append(nan if args.no_compose else timed(compose + ["up", "-d"])[0])
            lists, trues, versions, empties = [], [], [], []
            for _ in range(args.runs):
                trues.append(timed(["/bin/true"])[0])
                empties.append(timed([empty])[0])
                versions.append(timed([fd, "--version"])[0])
                lists.append(list_calls())
                dt, out = timed(fd_apply)
                fd_noop.append(dt)
                m = re.search(r"(\d+) Docker API call", out)
                calls.add(int(m.group(1)) if m else -1)
                cp_noop.append(nan if args.no_compose else timed(compose + ["up", "-d"])[0])
            clean_fd()
            clean_compose(d)
        row = dict(n=n, fd_empty=median(fd_empty), cp_empty=median(cp_empty),
                   fd_noop=median(fd_noop), cp_noop=median(cp_noop), calls=sorted(calls),
                   true=median(trues), version=median(versions), lists=median(lists),
                   libs=median(empties))
        row["floor"] = row["version"] + row["lists"]
        rows.append(row)
        print(f"N={n:>3}: from empty fd {row['fd_empty']:.2f}s compose {row['cp_empty']:.2f}s | "
              f"no-op fd {row['fd_noop']*1000:.1f}ms compose {row['cp_noop']*1000:.0f}ms | "
              f"fd no-op API calls {row['calls']} | floor: /bin/true {row['true']*1000:.1f}ms, "
              f"empty program with foundationd's libraries {row['libs']*1000:.1f}ms, "
              f"foundationd --version {row['version']*1000:.1f}ms, the 3 list calls "
              f"{row['lists']*1000:.1f}ms; no-op / (--version + lists) "
              f"{row['fd_noop']/row['floor']:.2f}x; load {os.getloadavg()[0]:.1f}", flush=True)

    print()
    print(f"foundationd vs docker-compose {sh(['docker-compose', 'version', '--short']).stdout.strip()}"
          f"{' (not run: --no-compose)' if args.no_compose else ''}, "
          f"medians (from empty: {args.empty_runs} runs, no-op: {args.runs} runs), same engine, same run")
    print("|   N | from empty: foundationd | compose | ratio | no-op: foundationd | compose | ratio | no-op API calls |")
    print("|----:|------------------------:|--------:|------:|-------------------:|--------:|------:|----------------:|")
    for r in rows:
        print(f"| {r['n']:>3} | {r['fd_empty']:>22.2f}s | {r['cp_empty']:>6.2f}s | "
              f"{r['cp_empty']/r['fd_empty']:>4.1f}x | {r['fd_noop']*1000:>16.1f}ms | "
              f"{r['cp_noop']*1000:>5.0f}ms | {r['cp_noop']/r['fd_noop']:>4.0f}x | "
              f"{','.join(map(str, r['calls'])):>15} |")
    print("(ratio = compose time / foundationd time; higher is better for foundationd)")
    print()
    print("no-op against its floor (same run, medians): process start + the 3 bare list calls")
    print("|   N | no-op | /bin/true | empty program, same libraries | foundationd --version | 3 list calls "
          "| empty + lists | no-op / (--version + lists) |")
    print("|----:|------:|----------:|-----------------------------:|----------------------:|-------------:"
          "|--------------:|----------------------------:|")
    for r in rows:
        print(f"| {r['n']:>3} | {r['fd_noop']*1000:.1f} ms | {r['true']*1000:.1f} ms | "
              f"{r['libs']*1000:.1f} ms | {r['version']*1000:.1f} ms | {r['lists']*1000:.1f} ms | "
              f"{(r['libs'] + r['lists'])*1000:.1f} ms | {r['fd_noop']/r['floor']:.2f}x |")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
