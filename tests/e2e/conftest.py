"""Fixtures for end-to-end tests: the built foundationd binary as a black box,
the real Docker engine, and a unique project per test that is cleaned up."""
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest


def _skip_allowed():
    return os.environ.get("FOUNDATIOND_SKIP_E2E") == "1" and os.environ.get("CI") != "true"


def peer_image(env, recipe):
    """The test image named by `env` (scripts/test builds it with `recipe` and
    exports it). Unset: a failure, or a skip only when opted out locally."""
    ref = os.environ.get(env)
    if not ref:
        if _skip_allowed():
            pytest.skip(f"{env} not set")
        pytest.fail(f"{env} must name the image {recipe} builds (scripts/test sets it)")
    return ref


@pytest.fixture(autouse=True)
def sanitizer_reports():
    """Under a sanitizer-built binary (the 'sanitize-e2e' tests, tests/meson.build)
    every sanitizer report of the daemon or a CLI run lands in a file under
    FOUNDATIOND_SANITIZER_LOGS: a test during which one appeared fails, with
    the report, even when the daemon was killed afterwards."""
    logs = os.environ.get("FOUNDATIOND_SANITIZER_LOGS")
    if not logs:
        yield
        return
    os.makedirs(logs, exist_ok=True)
    before = set(os.listdir(logs))
    yield
    new = sorted(set(os.listdir(logs)) - before)
    if new:
        text = "\n".join(open(os.path.join(logs, n), errors="replace").read()[-6000:] for n in new)
        pytest.fail(f"sanitizer report(s) {new} in {logs}:\n{text}")


@pytest.fixture(scope="session")
def fd_bin():
    path = os.environ.get("FOUNDATIOND_BIN")
    if not path or not os.access(path, os.X_OK):
        if _skip_allowed():
            pytest.skip("FOUNDATIOND_BIN not set (opted out with FOUNDATIOND_SKIP_E2E=1)")
        pytest.fail("FOUNDATIOND_BIN must name the built foundationd binary (meson test sets it)")
    return path


@pytest.fixture(scope="session")
def image():
    ref = os.environ.get("FOUNDATIOND_TEST_IMAGE")
    if not ref:
        if _skip_allowed():
            pytest.skip("FOUNDATIOND_TEST_IMAGE not set")
        pytest.fail("FOUNDATIOND_TEST_IMAGE must name the busybox test image (scripts/test sets it)")
    return ref


# Every process the tests start gets SIGQUIT's default action back: a shell
# without job control (nohup ... &, some CI runners) starts its background
# jobs with SIGQUIT ignored, and an ignored disposition is inherited across
# exec, so a SIGQUIT sent to a test's child would do nothing at all.
signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def free_port():
    """A loopback TCP port nobody listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond, what, timeout=60, output=lambda: "", interval=0.1):
    """Polls `cond` until it is true; an OSError (a peer not listening yet)
    counts as not yet. On timeout, fails with `what`, the last error and the
    tail of `output()` (a daemon's log)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            if cond():
                return
        except OSError as e:
            last = e
        time.sleep(interval)
    why = f" (last error: {last})" if last else ""
    raise AssertionError(f"timed out waiting for {what}{why}\n{output()[-6000:]}")


def s3_request(tmp, port, keys, method, bucket="", sub="", body=""):
    """One S3 request to 127.0.0.1:`port`, signed by curl's own SigV4 (not
    foundationd's code), the key pair in a curl config file under `tmp` (not
    argv). Returns (HTTP status, body)."""
    key, secret = keys
    cfg = tmp / "curl.cfg"
    cfg.write_text(f'user = "{key}:{secret}"\n')
    os.chmod(cfg, 0o600)
    url = f"http://127.0.0.1:{port}/{bucket}" + (f"?{sub}=" if sub else "")
    sha = hashlib.sha256(body.encode()).hexdigest()
    cmd = ["curl", "-sS", "-K", str(cfg), "--aws-sigv4", "aws:amz:us-east-1:s3", "-X", method,
           "-H", f"x-amz-content-sha256: {sha}", "-w", "\n%{http_code}", url]
    if body:
        cmd += ["-H", "Content-Type: application/xml", "--data-binary", body]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    text, _, code = r.stdout.rpartition("\n")
    return int(code), text


def docker(*args, check=True):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


class Project:
    def __init__(self, fd_bin, image, tmp_path):
        self.bin = fd_bin
        self.image = image
        self.name = "fd-e2e-" + uuid.uuid4().hex[:8]
        self.dir = tmp_path
        (tmp_path / "VERSIONS").write_text(f'[images]\nbusybox = "{image}"\n')

    def write(self, body, prune=False):
        head = f'spec_version = 1\nproject = "{self.name}"\nversions = "VERSIONS"\n'
        if prune:
            head += "prune = true\n"
        path = self.dir / "foundation.toml"
        path.write_text(head + body.replace("@", self.name + "-"))
        return str(path)

    def run(self, *args, stdin=None):
        env = dict(os.environ, NO_COLOR="1")
        return subprocess.run([self.bin, *args], capture_output=True, text=True, env=env,
                              input=stdin, timeout=300)

    def container(self, short):
        r = docker("inspect", f"{self.name}-{short}", check=False)
        return json.loads(r.stdout)[0] if r.returncode == 0 else None

    def cleanup(self):
        ids = docker("ps", "-aq", "--filter", f"label=foundationd.project={self.name}").stdout.split()
        if ids:
            docker("rm", "-f", *ids, check=False)
        for kind in ("network", "volume"):
            names = docker(kind, "ls", "-q", "--filter", f"label=foundationd.project={self.name}").stdout.split()
            for n in names:
                docker(kind, "rm", n, check=False)


@pytest.fixture
def project(fd_bin, image, tmp_path):
    p = Project(fd_bin, image, tmp_path)
    yield p
    p.cleanup()
