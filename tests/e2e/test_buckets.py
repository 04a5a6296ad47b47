"""End-to-end: a spec with an [s3] container (SeaweedFS, the image
tests/peers/seaweedfs-image builds; scripts/test exports FOUNDATIOND_S3_IMAGE)
and [buckets], converged by `foundationd apply --once` and by the daemon;
versioning turned off by hand is repaired by both. What S3 holds is read with
curl's own SigV4 signing, not with foundationd's code."""
import http.client
import json
import os
import subprocess
import time

import pytest

from conftest import free_port, peer_image, s3_request

PASS = "buckets e2e passphrase, long enough"


@pytest.fixture(scope="session")
def s3_image():
    return peer_image("FOUNDATIOND_S3_IMAGE", "tests/peers/seaweedfs-image")


SPEC = """
[credentials.s3-root]
[credentials.s3-root.fields]
accessKey = { generate = "hex", bytes = 10 }
secretKey = { generate = "password", length = 40 }

[containers.@s3]
image = "${versions.seaweedfs}"
env = { AWS_ACCESS_KEY_ID = "${credentials.s3-root.accessKey}", AWS_SECRET_ACCESS_KEY = "${credentials.s3-root.secretKey}" }
ports = ["127.0.0.1:PORT:9000"]
stop_timeout = "1s"

[s3.main]
container = "@s3"
endpoint = "http://127.0.0.1:PORT"
region = "us-east-1"
access_key = "${credentials.s3-root.accessKey}"
secret_key = "${credentials.s3-root.secretKey}"

[buckets.@backups]
s3 = "main"
versioning = true
expire_days = 7

[buckets.@lfs]
s3 = "main"
"""


class Stack:
    def __init__(self, project, tmp_path, image):
        self.p = project
        self.tmp = tmp_path
        self.port = free_port()
        (tmp_path / "VERSIONS").write_text(f'[images]\nbusybox = "{project.image}"\nseaweedfs = "{image}"\n')
        self.spec = project.write(SPEC.replace("PORT", str(self.port)))
        self.state = str(tmp_path / "state")
        self.passfile = str(tmp_path / "pass")
        with open(self.passfile, "w") as f:
            f.write(PASS + "\n")
        r = project.run("init", "--state-dir", self.state, "--passphrase-file", self.passfile,
                        "--kdf", "interactive")
        assert r.returncode == 0, r.stderr
        self.backups = f"{project.name}-backups"
        self.lfs = f"{project.name}-lfs"
        self._keys = None

    def apply(self):
        r = self.p.run("apply", "--once", "--spec", self.spec, "--state-dir", self.state,
                       "--passphrase-file", self.passfile)
        return r

    def keys(self):
        if self._keys is None:
            out = []
            for field in ("accessKey", "secretKey"):
                r = self.p.run("secret", "show", f"s3-root.{field}", "--state-dir", self.state,
                               "--passphrase-file", self.passfile)
                assert r.returncode == 0, r.stderr
                out.append(r.stdout.rstrip("\n"))
            self._keys = tuple(out)
        return self._keys

    def s3(self, method, bucket="", sub="", body=""):
        return s3_request(self.tmp, self.port, self.keys(), method, bucket, sub, body)

    def buckets(self):
        code, text = self.s3("GET")
        assert code == 200, text
        return [part.split("</Name>")[0] for part in text.split("<Name>")[1:]]

    def versioning(self, bucket):
        code, text = self.s3("GET", bucket, "versioning")
        assert code == 200, text
        if "<Status>Enabled</Status>" in text:
            return "Enabled"
        if "<Status>Suspended</Status>" in text:
            return "Suspended"
        return ""

    def suspend(self, bucket):
        body = ('<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                "<Status>Suspended</Status></VersioningConfiguration>")
        code, text = self.s3("PUT", bucket, "versioning", body)
        assert code == 200, text
        assert self.versioning(bucket) == "Suspended"

    def lifecycle(self, bucket):
        return self.s3("GET", bucket, "lifecycle")


@pytest.fixture
def stack(project, tmp_path, s3_image):
    return Stack(project, tmp_path, s3_image)


def test_apply_once_creates_buckets_keeps_them_and_repairs_versioning(stack, project):
    r = stack.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    assert project.container("s3")["State"]["Running"]
    names = stack.buckets()
    assert stack.backups in names and stack.lfs in names
    assert stack.versioning(stack.backups) == "Enabled"
    assert stack.versioning(stack.lfs) == ""
    code, text = stack.lifecycle(stack.backups)
    assert code == 200 and "<ID>foundationd-expire</ID>" in text and "<Days>7</Days>" in text
    code, text = stack.lifecycle(stack.lfs)
    assert code == 404 and "NoSuchLifecycleConfiguration" in text
    key, secret = stack.keys()
    assert secret not in r.stdout + r.stderr

    # A second run changes nothing; a bucket made by hand is an orphan, kept.
    code, text = stack.s3("PUT", f"{project.name}-manual")
    assert code == 200, text
    r = stack.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"orphan bucket {project.name}-manual" in r.stdout
    assert f"{project.name}-manual" in stack.buckets()

    # Versioning turned off by hand: the next converge turns it back on.
    stack.suspend(stack.backups)
    r = stack.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    assert stack.versioning(stack.backups) == "Enabled"
    assert secret not in r.stdout + r.stderr


class Serve:
    def __init__(self, stack, tmp_path):
        self.port = free_port()
        self.token_file = str(tmp_path / "api-token")
        cfg = tmp_path / "foundationd.toml"
        cfg.write_text(
            f'state_dir = "{stack.state}"\n'
            f'[api]\nlisten = ["tcp:127.0.0.1:{self.port}"]\n'
            f'token_file = "{self.token_file}"\n'
            f'[source]\nkind = "file"\npath = "{stack.spec}"\n'
            f'[reconcile]\nresync_interval = "1h"\n'
            f'[unlock]\nkdf = "interactive"\n')
        creds = tmp_path / "creds"
        creds.mkdir()
        (creds / "passphrase").write_text(PASS + "\n")
        self.log = open(tmp_path / "daemon.log", "w+")
        env = dict(os.environ, CREDENTIALS_DIRECTORY=str(creds))
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen([stack.p.bin, "serve", "--config", str(cfg)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def request(self, method, path, token=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            conn.request(method, path, headers=headers)
            r = conn.getresponse()
            return r.status, r.read().decode()
        except OSError as e:
            return 0, str(e)
        finally:
            conn.close()

    def resource(self, kind, name):
        code, body = self.request("GET", "/v1/status")
        if code != 200:
            return None
        for r in json.loads(body)["resources"]:
            if r.get("kind") == kind and r.get("name") == name:
                return r
        return None

    def wait(self, cond, what, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}\n{self.output()[-4000:]}")

    def drift_repairs(self):
        code, body = self.request("GET", "/metrics")
        assert code == 200, body
        for line in body.splitlines():
            if line.startswith("foundationd_drift_repairs_total") and 'kind="bucket"' in line:
                return float(line.split()[-1])
        return 0.0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def test_daemon_converges_buckets_and_repairs_versioning_drift(stack, project, tmp_path):
    d = Serve(stack, tmp_path)
    try:
        converged = lambda name: (d.resource("bucket", name) or {}).get("status") == "converged"
        d.wait(lambda: converged(stack.backups) and converged(stack.lfs), "buckets converged")
        assert stack.versioning(stack.backups) == "Enabled"
        code, text = stack.lifecycle(stack.backups)
        assert code == 200 and "<Days>7</Days>" in text
        assert (d.resource("s3", "main") or {}).get("status") == "converged"

        before = d.drift_repairs()
        stack.suspend(stack.backups)
        token = open(d.token_file).read().strip()
        # The plan shows the repair before it is made (a dry run against S3).
        code, body = d.request("GET", "/v1/plan", token=token)
        assert code == 200, body
        servers = json.loads(body)["buckets"]["servers"]
        assert servers[0]["s3"] == "main" and servers[0]["ok"] is True
        assert {"bucket": stack.backups, "action": "enable-versioning",
                "reason": "versioning: Suspended -> Enabled", "drift": True} in servers[0]["changes"]
        assert stack.versioning(stack.backups) == "Suspended"
        code, body = d.request("POST", "/v1/reconcile", token=token)
        assert code == 202, body
        d.wait(lambda: stack.versioning(stack.backups) == "Enabled", "versioning repaired by the daemon")
        d.wait(lambda: d.drift_repairs() >= before + 1, "a bucket drift repair counted")
        key, secret = stack.keys()
        assert secret not in d.output()
    finally:
        d.stop()
