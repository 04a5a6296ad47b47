"""End-to-end faults for `foundationd serve` (TESTING.md "Faults"):

- its Docker Engine stops and starts again (idle, and in the middle of a
  reconcile): foundationd keeps running, reports Docker unreachable, retries
  with backoff, reconnects its events stream, resyncs and repairs drift again;
- the unseal backoff survives a daemon restart.

The Engine that is restarted is a private one (tests/peers/docker-engine): its
own network namespace, data root and exec root under a temporary directory,
never the shared Engine on /var/run/docker.sock."""
import json
import math
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import _skip_allowed
from test_daemon import PASS, Daemon, free_port

ENGINE = Path(__file__).resolve().parents[1] / "peers" / "docker-engine"


class Engine:
    """A private dockerd: start, stop (SIGTERM, data kept), destroy."""

    def __init__(self, image):
        self.name = "fdtest-faults-" + uuid.uuid4().hex[:6]
        # Short: unix socket paths under it must stay below 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="fdtest-faults-")
        self.image = image
        self.socket = os.path.join(self.dir, "docker.sock")

    def _run(self, *args):
        r = subprocess.run([str(ENGINE), *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"docker-engine {args[0]}: {r.stderr}\n{self.log_tail()}"
        return r.stdout.strip()

    def start(self):
        assert self._run("start", self.name, self.dir, self.image) == self.socket

    def stop(self):
        self._run("stop", self.dir)

    def destroy(self):
        subprocess.run([str(ENGINE), "destroy", self.name, self.dir], timeout=120)

    def log_tail(self):
        try:
            return Path(self.dir, "dockerd.log").read_text()[-3000:]
        except OSError:
            return ""

    def docker(self, *args, check=True):
        return subprocess.run(["docker", "-H", "unix://" + self.socket, *args], check=check,
                              capture_output=True, text=True, timeout=60)

    def inspect(self, name):
        r = self.docker("inspect", name, check=False)
        return json.loads(r.stdout)[0] if r.returncode == 0 else None

    def running(self, name):
        c = self.inspect(name)
        return c is not None and c["State"]["Running"]

    def managed(self, project):
        return self.docker("ps", "-a", "--format", "{{.Names}}", "--filter",
                           f"label=foundationd.project={project}").stdout.split()


@pytest.fixture
def engine(image):
    if os.geteuid() != 0:
        if _skip_allowed():
            pytest.skip("a private Docker Engine needs root (netns, dockerd)")
        pytest.fail("a private Docker Engine needs root (netns, dockerd); run the e2e suite as root")
    e = Engine(image)
    try:
        e.start()
        yield e
    finally:
        e.destroy()
        assert not os.path.exists(f"/run/netns/{e.name}")
        assert not os.path.exists(e.dir)


class FaultDaemon(Daemon):
    """test_daemon's Daemon with a chosen spec and Docker socket, started and
    stopped (SIGTERM) as often as a test needs, on the same state dir."""

    def __init__(self, project, tmp_path, spec, docker_socket=None):
        self.p = project
        self.tmp = tmp_path
        self.port = free_port()
        self.state = str(tmp_path / "state")
        self.token_file = str(tmp_path / "api-token")
        self.spec = project.write(spec)
        self.config = tmp_path / "foundationd.toml"
        docker_cfg = f'[docker]\nsocket = "{docker_socket}"\n' if docker_socket else ""
        self.config.write_text(
            f'state_dir = "{self.state}"\n'
            f'[api]\nlisten = ["unix:{tmp_path}/api.sock", "tcp:127.0.0.1:{self.port}"]\n'
            f'token_file = "{self.token_file}"\n' + docker_cfg +
            f'[source]\nkind = "file"\npath = "{self.spec}"\n'
            f'[reconcile]\nresync_interval = "1h"\n'
            f'[unlock]\nkdf = "interactive"\n')
        passfile = tmp_path / "pass"
        passfile.write_text(PASS + "\n")
        self.passfile = str(passfile)
        r = project.run("init", "--state-dir", self.state, "--passphrase-file", self.passfile,
                        "--kdf", "interactive")
        assert r.returncode == 0, r.stderr
        self.notify_path = str(tmp_path / "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(0.2)
        self.messages = []
        self.closing = False
        self.reader = threading.Thread(target=self._read_notify, daemon=True)
        self.reader.start()
        self.log = open(tmp_path / "daemon.log", "w+")
        self.proc = None
        self.spawn()

    def spawn(self):
        self.messages.clear()
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        env.pop("CREDENTIALS_DIRECTORY", None)
        self.proc = subprocess.Popen([self.p.bin, "serve", "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.wait_notify("READY=1")

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def alive(self):
        return self.proc.poll() is None

    def log_events(self, event):
        """The daemon's log lines for `event` ("<4>event=NAME k=v ...")."""
        pattern = re.compile(r"(^|\s|>)event=" + re.escape(event) + r"(\s|$)")
        return [line for line in self.output().splitlines() if pattern.search(line)]


@pytest.fixture
def fault_daemons(project, tmp_path):
    made = []

    def make(spec, docker_socket=None):
        d = FaultDaemon(project, tmp_path, spec, docker_socket)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()


def retry_in_ms(lines):
    return [int(m.group(1)) for m in (re.search(r"retry_in_ms[=\":]+(\d+)", l) for l in lines) if m]


PLAIN = """
[containers.@a]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"

[containers.@b]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
"""

LATE = """
[containers.@c]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
"""


def test_docker_engine_restart(project, engine, fault_daemons):
    """The Engine stops (containers stopped with it: restart = "no", so only
    foundationd brings them back) and starts again."""
    d = fault_daemons(PLAIN, engine.socket)
    a, b, c = (f"{project.name}-{s}" for s in "abc")
    d.wait(lambda: engine.running(a) and engine.running(b), "a and b on the private Engine")
    d.wait(lambda: all((d.resource(s) or {}).get("status") == "converged" for s in "ab"),
           "a and b converged in the status")
    started_before = {n: engine.inspect(n)["State"]["StartedAt"] for n in (a, b)}

    engine.stop()
    t_down = time.time()
    # foundationd keeps running and says Docker is unreachable.
    d.wait(lambda: d.status()["last_reconcile"]["result"] == "docker unreachable",
           "last_reconcile.result = docker unreachable", timeout=30)
    d.wait(lambda: (d.resource("a") or {}).get("status") == "pending", "a pending while Docker is away",
           timeout=30)
    assert "Docker unreachable" in d.resource("a")["reason"]
    code, _, body = d.request("GET", "/readyz")
    assert code == 503, body
    # A change made while the Engine is away: only a resync can apply it
    # (resync_interval is 1h; nothing else triggers a full reconcile).
    d.p.write(PLAIN + LATE)
    # Retries back off: 0.5 s, 1 s, 2 s, ...
    d.wait(lambda: len(retry_in_ms(d.log_events("docker.unreachable"))) >= 3,
           "three reconnect attempts", timeout=30)
    waits = retry_in_ms(d.log_events("docker.unreachable"))
    assert all(x < y for x, y in zip(waits, waits[1:])), waits
    assert d.alive()
    assert not engine.running(a)  # the Engine is really gone
    print(f"engine down for {time.time() - t_down:.1f}s; retry waits (ms): {waits}")

    engine.start()
    t_up = time.time()
    d.wait(lambda: d.log_events("docker.events_reconnected"), "the events stream reconnected",
           timeout=40)
    # The resync after reconnecting: the stopped containers are started again
    # (the Engine would not: restart = "no") and the late change is applied.
    d.wait(lambda: engine.running(a) and engine.running(b) and engine.running(c),
           "a, b and c running after the Engine came back", timeout=60)
    resynced = time.time() - t_up
    for n in (a, b):
        assert engine.inspect(n)["State"]["StartedAt"] != started_before[n]
    d.wait(lambda: all((d.resource(s) or {}).get("status") == "converged" for s in "abc"),
           "a, b and c converged in the status")
    assert d.status()["last_reconcile"]["result"] == "converged"

    # The events stream is live again: a removal is repaired at once.
    before = engine.inspect(a)["Id"]
    engine.docker("rm", "-f", a)
    t0 = time.time()
    d.wait(lambda: engine.running(a) and engine.inspect(a)["Id"] != before,
           "a restored after docker rm -f on the restarted Engine", timeout=30)
    print(f"resync after the Engine came back: {resynced:.2f}s; "
          f"repair after rm -f: {time.time() - t0:.2f}s")
    assert sorted(engine.managed(project.name)) == sorted([a, b, c])
    assert d.alive()
    assert d.terminate() == 0


GATED = """
[containers.@gate]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
healthcheck = { test = ["CMD-SHELL", "test -f /tmp/ok"], interval = "1s", timeout = "1s", retries = 10000 }

[containers.@after]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
depends_on = { @gate = "healthy" }
"""


def test_docker_engine_restart_mid_reconcile(project, engine, fault_daemons):
    """The Engine stops while a reconcile waits for a dependency to become
    healthy (deterministic: it stays "starting" until the test says so)."""
    d = fault_daemons(GATED, engine.socket)
    gate, after = f"{project.name}-gate", f"{project.name}-after"
    d.wait(lambda: engine.running(gate), "gate running")
    # The reconcile is in flight: gate is up and unhealthy, after waits for it.
    d.wait(lambda: d.status()["last_reconcile"]["running"], "the reconcile to be running")
    assert engine.inspect(after) is None
    assert d.status()["last_reconcile"]["running"]

    engine.stop()
    d.wait(lambda: not d.status()["last_reconcile"]["running"], "the interrupted reconcile to end",
           timeout=30)
    d.wait(lambda: d.status()["last_reconcile"]["result"] == "docker unreachable",
           "docker unreachable reported", timeout=30)
    assert d.alive()

    engine.start()
    d.wait(lambda: d.log_events("docker.events_reconnected"), "the events stream reconnected",
           timeout=40)
    # The resync starts gate again and waits for it, as before the restart.
    d.wait(lambda: engine.running(gate), "gate started again by the resync", timeout=60)
    assert engine.inspect(after) is None
    engine.docker("exec", gate, "touch", "/tmp/ok")
    d.wait(lambda: engine.running(after), "after created once gate is healthy", timeout=60)
    d.wait(lambda: all((d.resource(s) or {}).get("status") == "converged" for s in ("gate", "after")),
           "gate and after converged")
    # Nothing half-made or duplicated by the interrupted reconcile.
    assert sorted(engine.managed(project.name)) == sorted([gate, after])
    assert d.alive()
    assert d.terminate() == 0


def test_unseal_backoff_survives_a_restart(project, fault_daemons):
    """Failed unseals back off (1 s, 2 s, 4 s, 8 s); the counter is in the
    state store, so a restarted daemon keeps refusing until the wait is over."""
    d = fault_daemons("")  # no resources: only the lock matters here
    wrong = "not-the-passphrase-0815"

    def unseal(passphrase):
        sent = time.time()
        code, headers, body = d.request("POST", "/v1/unseal", {"passphrase": passphrase})
        return code, int(headers.get("Retry-After", "0")), body, sent, time.time()

    # Four wrong passphrases, each once the previous backoff is over.
    last_fail = None
    for n in range(1, 5):
        code, retry, body, sent, recv = unseal(wrong)
        if code == 429:  # a previous wait was not quite over by our clock
            time.sleep(retry)
            code, retry, body, sent, recv = unseal(wrong)
        assert code == 403, body
        last_fail = (sent, recv)
        code, retry, body, _, _ = unseal(PASS)  # refused without being tried
        assert code == 429, body
        assert 1 <= retry <= 2 ** (n - 1), (n, retry)
        if n < 4:
            time.sleep(retry)
    assert d.status()["locked"] is True

    assert d.terminate() == 0
    d.spawn()
    assert d.status()["locked"] is True
    code, retry, body, q_sent, q_recv = unseal(PASS)
    assert code == 429, body
    assert "rate_limited" in body
    # Consistent with 4 persisted failures (8 s from the last one), whatever
    # the exact instants the daemon saw.
    lo = max(1, math.ceil(8 - (q_recv - last_fail[0])))
    hi = max(1, math.ceil(8 - (q_sent - last_fail[1])))
    assert lo <= retry <= hi, (lo, retry, hi)
    print(f"after the restart: Retry-After {retry}s (allowed {lo}..{hi})")

    time.sleep(retry)
    code, _, body, _, _ = unseal(PASS)
    if code == 429:  # rounding at a second's edge
        time.sleep(1)
        code, _, body, _, _ = unseal(PASS)
    assert code == 200, body
    assert d.status()["locked"] is False
    token = open(d.token_file).read().strip()
    code, _, body = d.request("GET", "/v1/events?since=0", token=token)
    assert code == 200, body
    failures = [e["fields"].get("failures") for e in json.loads(body)["events"]
                if e["event"] == "unseal.failed"]
    assert failures == [1, 2, 3, 4], failures
    assert PASS not in d.output() and wrong not in d.output()
    assert d.terminate() == 0
