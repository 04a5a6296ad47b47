#!/usr/bin/env python3
"""Daemon benchmark: `foundationd serve` with N (default 30) managed containers.

Prints, measured in one run on this machine, each with its floor:
  - start-to-READY: process start until READY=1 on NOTIFY_SOCKET (median of 5)
  - drift repair latency: a managed container removed (`rm -f`) or killed
    through the Engine's API until it runs again, repaired from the Docker
    events stream (resync is 1h), p50/p99 of 20 trials. Its floor: the bare
    create + start (rm -f) or start (kill) of a scratch container of the same
    image and command, as API calls timed in the same run, so the ratio says
    what foundationd adds. The removal, the kill and the polling go to the
    Engine's socket from this process (not the docker CLI, whose own start of
    ~0.1 s on a loaded machine would be most of the figure).
  - idle CPU seconds and RSS of the daemon over 60 s with nothing to do
  - wrk against /healthz, /v1/status and /metrics (requests/s, p99), if wrk is
    installed (Debian's `wrk`); /healthz (a constant answer) is the floor of the
    server itself.
Goals (the pipeline issue): repair p50 <= 300 ms and not growing with the
number of containers (run with --containers 30 and 150), idle CPU ~0,
RSS < 20 MiB, /metrics p99 < 2 ms. These are figures, not assertions.

  tests/bench/daemon_bench.py --bin build/daemon/foundationd [--containers 30] [--idle 60]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time

PROJECT = "bench-daemon"


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


class Engine:
    """The Docker Engine API over its Unix socket, one connection per call."""

    def __init__(self, path="/var/run/docker.sock"):
        self.path = path

    def call(self, method, url, body=None):
        conn = http.client.HTTPConnection("localhost", timeout=60)
        conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.sock.connect(self.path)
        data = json.dumps(body) if body is not None else None
        conn.request(method, "/v1.41" + url, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        r = conn.getresponse()
        out = r.read()
        conn.close()
        return r.status, out


ENGINE = Engine()


def identity(name):
    status, body = ENGINE.call("GET", f"/containers/{name}/json")
    if status != 200:
        return ""
    d = json.loads(body)
    return f"{d['Id']} {d['State']['StartedAt']} {str(d['State']['Running']).lower()}"


def running(name):
    return identity(name).endswith(" true")


def floor_trials(image, trials):
    """The repair's floor: the same break (rm -f, kill) of a scratch container
    of the same image and command, followed at once by the bare Engine calls
    that repair it (create + start, start), timed from the break's call as the
    repair is. A client that knew of the break the moment its call returned
    could not do better: the Engine holds the container until its removal or
    kill is handled. The repair calls alone are timed too ("bare")."""
    name = f"{PROJECT}-floor"
    out = {"rm -f": [], "kill": []}
    bare = {"rm -f": [], "kill": []}
    body = {"Image": image, "Cmd": ["sleep", "86400"], "StopTimeout": 1,
            "Labels": {"foundationd.bench": "floor"}}

    def create_start():
        st, b = ENGINE.call("POST", f"/containers/create?name={name}", body)
        if st != 201:
            raise SystemExit(f"bench: floor create: {st} {b[:200]}")
        start()

    def start():
        st, b = ENGINE.call("POST", f"/containers/{name}/start")
        if st != 204:
            raise SystemExit(f"bench: floor start: {st} {b[:200]}")

    ENGINE.call("DELETE", f"/containers/{name}?force=1")
    create_start()
    for _ in range(trials):
        time.sleep(0.2)
        t0 = time.perf_counter()
        ENGINE.call("DELETE", f"/containers/{name}?force=1")
        t1 = time.perf_counter()
        create_start()
        out["rm -f"].append(time.perf_counter() - t0)
        bare["rm -f"].append(time.perf_counter() - t1)
        time.sleep(0.2)
        t0 = time.perf_counter()
        ENGINE.call("POST", f"/containers/{name}/kill")
        t1 = time.perf_counter()
        start()
        out["kill"].append(time.perf_counter() - t0)
        bare["kill"].append(time.perf_counter() - t1)
    ENGINE.call("DELETE", f"/containers/{name}?force=1")
    return out, bare


def wait(cond, timeout=60, step=0.01, what="?"):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if cond():
            return time.perf_counter() - t0
        time.sleep(step)
    raise SystemExit(f"bench: timed out waiting for {what}")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Daemon:
    def __init__(self, binary, d, port):
        self.messages = []
        self.notify_path = os.path.join(d, f"notify-{time.monotonic_ns()}")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.notify_path)
        self.sock.settimeout(0.1)
        self.stop_reading = False
        threading.Thread(target=self._read, daemon=True).start()
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([binary, "serve", "--config", os.path.join(d, "cfg.toml")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    def _read(self):
        while not self.stop_reading:
            try:
                self.messages.append((time.perf_counter(), self.sock.recv(4096).decode()))
            except (socket.timeout, OSError):
                pass

    def ready_after(self):
        waited_from = time.perf_counter()
        waited = wait(lambda: any("READY=1" in m for _, m in self.messages), timeout=30,
                      step=0.0005, what="READY=1")
        return waited_from - self.t0 + waited

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.stop_reading = True
        self.sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/daemon/foundationd")
    ap.add_argument("--containers", type=int, default=30)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--idle", type=int, default=60)
    ap.add_argument("--image", default=os.environ.get("FOUNDATIOND_TEST_IMAGE"))
    args = ap.parse_args()
    image = args.image or sh("tests/peers/busybox-image").stdout.strip()
    binary = os.path.abspath(args.bin)
    d = tempfile.mkdtemp(prefix="fd-bench-")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with open(os.path.join(d, "VERSIONS"), "w") as f:
        f.write(f'[images]\nbusybox = "{image}"\n')
    with open(os.path.join(d, "spec.toml"), "w") as f:
        f.write(f'spec_version = 1\nproject = "{PROJECT}"\nversions = "VERSIONS"\n')
        for i in range(args.containers):
            f.write(f'[containers.bd-{i}]\nimage = "${{versions.busybox}}"\ncommand = ["sleep", "86400"]\n'
                    f'stop_timeout = "1s"\n')
    with open(os.path.join(d, "cfg.toml"), "w") as f:
        f.write(f'state_dir = "{d}/state"\n[api]\nlisten = ["unix:{d}/api.sock", "tcp:127.0.0.1:{port}"]\n'
                f'token_file = "{d}/token"\n[source]\npath = "{d}/spec.toml"\n'
                f'[reconcile]\nresync_interval = "1h"\n')
    names = [f"bd-{i}" for i in range(args.containers)]
    load0 = f"{os.getloadavg()[0]:.1f}"
    dm = None
    try:
        readies = []
        for _ in range(5):
            dm = Daemon(binary, d, port)
            readies.append(dm.ready_after())
            dm.stop()
        dm = Daemon(binary, d, port)
        dm.ready_after()
        wait(lambda: all(running(n) for n in names), timeout=300, step=0.2, what="all containers")

        repairs = {"rm -f": [], "kill": []}
        for trial in range(args.trials):
            for how, (method, url) in (("rm -f", ("DELETE", "/containers/{}?force=1")),
                                       ("kill", ("POST", "/containers/{}/kill"))):
                name = names[(trial * 7 + len(how)) % len(names)]
                before = identity(name)
                t0 = time.perf_counter()
                ENGINE.call(method, url.format(name))
                # Repaired = running again as a new container (rm -f) or a new start (kill).
                wait(lambda: (lambda now: now != before and now.endswith(" true"))(identity(name)),
                     timeout=30, step=0.005, what=f"{name} repaired")
                repairs[how].append(time.perf_counter() - t0)
        time.sleep(2)  # let the last repairs settle before measuring idleness
        floors, bare = floor_trials(image, args.trials)
        pid = dm.proc.pid
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        time.sleep(args.idle)
        cpu1, t1 = cpu_seconds(pid), time.perf_counter()
        rss = rss_mib(pid)

        wrk_rows = []
        if shutil.which("wrk"):
            for path in ("/healthz", "/v1/status", "/metrics"):
                r = sh("wrk", "-t1", "-c4", "-d5s", "--latency", f"http://127.0.0.1:{port}{path}")
                rps = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
                p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", r.stdout)
                p99v = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)] if p99 else float("nan")
                wrk_rows.append((path, float(rps.group(1)) if rps else float("nan"), p99v))
        dm.stop()

        print(f"foundationd serve, {args.containers} managed containers, this machine, one run; "
              f"load average at the start {load0}, at the end {os.getloadavg()[0]:.1f} (2 cores)")
        print(f"start to READY=1: median {statistics.median(readies)*1000:.0f} ms (5 starts)")
        for how, xs in repairs.items():
            f50 = pct(floors[how], 50)
            what = "create + start" if how == "rm -f" else "start"
            print(f"drift repair after {how}: p50 {pct(xs, 50)*1000:.0f} ms, p99 {pct(xs, 99)*1000:.0f} ms "
                  f"({len(xs)} trials, from the API call to running again); floor, the same {how} "
                  f"then at once the bare {what}: p50 {f50*1000:.0f} ms, p99 {pct(floors[how], 99)*1000:.0f} ms "
                  f"(the {what} alone: p50 {pct(bare[how], 50)*1000:.0f} ms); "
                  f"ratio p50 {pct(xs, 50)/f50:.2f}x, foundationd's part {(pct(xs, 50) - f50)*1000:+.0f} ms")
        print(f"idle over {t1 - t0:.0f} s: CPU {cpu1 - cpu0:.2f} s ({(cpu1 - cpu0) / (t1 - t0) * 100:.2f} %), "
              f"RSS {rss:.1f} MiB")
        floor_p99 = next((p99 for path, _, p99 in wrk_rows if path == "/healthz"), float("nan"))
        for path, rps, p99 in wrk_rows:
            ratio = "" if path == "/healthz" else f" ({p99 / floor_p99:.1f}x /healthz's, the floor)"
            print(f"wrk -t1 -c4 -d5s {path}: {rps:.0f} requests/s, p99 {p99:.2f} ms{ratio}")
        if not wrk_rows:
            print("wrk: not installed (scripts/install-deps --bench)")
    finally:
        if dm is not None and dm.proc.poll() is None:
            dm.proc.kill()
        ENGINE.call("DELETE", f"/containers/{PROJECT}-floor?force=1")
        ids = sh("docker", "ps", "-aq", "--filter", f"label=foundationd.project={PROJECT}").stdout.split()
        if ids:
            sh("docker", "rm", "-f", *ids, check=False)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
