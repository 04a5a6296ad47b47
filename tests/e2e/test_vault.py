"""End-to-end: foundationd and a real OpenBao (tests/peers/openbao-image, file
storage on a Docker volume, not dev mode) — first boot through the daemon,
a Vault restart re-unsealed without the operator, a wrong passphrase (403, no
key reaches Vault), export/import of the init material onto a fresh state,
and kill -9 of the daemon at random instants of first boot (never a second
init, keys always recoverable)."""
import http.client
import json
import os
import random
import signal
import subprocess
import time
import urllib.request
import uuid

import pytest

from conftest import docker, free_port, peer_image

PASS = "vault e2e passphrase, long enough"

SPEC = """
spec_version = 1
project = "{project}"
versions = "VERSIONS"

[volumes.{project}-bao-data]

[containers.{project}-bao]
image = "${{versions.openbao}}"
volumes = ["{project}-bao-data:/openbao/data"]
ports = ["127.0.0.1:{bao_port}:8200"]
stop_timeout = "2s"

[vault]
container = "{project}-bao"
address = "http://127.0.0.1:{bao_port}"
key_shares = 3
key_threshold = 2
kv_mount = "foundation"

[vault.policies.app]
rules = '''
path "foundation/data/app/*" {{ capabilities = ["read"] }}
'''

[credentials.app]
vault_path = "app/db-credentials"
[credentials.app.fields]
username = "app"
password = {{ generate = "password" }}
"""


@pytest.fixture(scope="session")
def openbao_image():
    return peer_image("FOUNDATIOND_OPENBAO_IMAGE", "tests/peers/openbao-image")


class Host:
    """One foundationd host: a spec with an OpenBao container, a state, a daemon."""

    def __init__(self, fd_bin, image, tmp_path, keep_key=True):
        self.bin = fd_bin
        self.dir = tmp_path
        self.project = "fdtest-vault-" + uuid.uuid4().hex[:8]
        self.bao_port = free_port()
        self.port = free_port()
        self.state = str(tmp_path / "state")
        self.token_file = str(tmp_path / "api-token")
        (tmp_path / "VERSIONS").write_text(f'[images]\nopenbao = "{image}"\n')
        self.spec = tmp_path / "foundation.toml"
        self.spec.write_text(SPEC.format(project=self.project, bao_port=self.bao_port))
        self.config = tmp_path / "foundationd.toml"
        self.config.write_text(
            f'state_dir = "{self.state}"\n'
            f'[api]\nlisten = ["tcp:127.0.0.1:{self.port}"]\n'
            f'token_file = "{self.token_file}"\n'
            f'[source]\nkind = "file"\npath = "{self.spec}"\n'
            f'[reconcile]\nresync_interval = "1h"\n'
            f'[unlock]\nkdf = "interactive"\nkeep_key_in_memory = {"true" if keep_key else "false"}\n')
        self.passfile = tmp_path / "pass"
        self.passfile.write_text(PASS + "\n")
        self.creds = tmp_path / "creds"
        self.creds.mkdir()
        (self.creds / "passphrase").write_text(PASS + "\n")
        self.proc = None
        self.log = open(tmp_path / "daemon.log", "a+")

    def run(self, *args, check=True):
        r = subprocess.run([self.bin, *args], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, NO_COLOR="1"))
        if check:
            assert r.returncode == 0, r.stdout + r.stderr
        return r

    def init_state(self):
        self.run("init", "--state-dir", self.state, "--passphrase-file", str(self.passfile),
                 "--kdf", "interactive")

    def start(self, unattended=False):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        if unattended:
            env["CREDENTIALS_DIRECTORY"] = str(self.creds)
        else:
            env.pop("CREDENTIALS_DIRECTORY", None)
        self.proc = subprocess.Popen([self.bin, "serve", "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.wait(lambda: self._answers(), 30, "the API to answer")

    def _answers(self):
        try:
            self.request("GET", "/healthz")
            return True
        except OSError:
            return False

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def request(self, method, path, body=None, token=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        r = conn.getresponse()
        data = r.read().decode()
        conn.close()
        return r.status, data

    def api_token(self):
        with open(self.token_file) as f:
            return f.read().strip()

    def status(self):
        code, body = self.request("GET", "/v1/status")
        assert code == 200, body
        return json.loads(body)

    def seal_status(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.bao_port}/v1/sys/seal-status",
                                        timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def converged(self):
        s = self.status()
        v = s["vault"]
        if not v["initialized"] or v["sealed"]:
            return False
        if not s["last_reconcile"].get("converged"):
            return False
        return all(r["status"] == "converged" for r in s["resources"])

    def wait(self, cond, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{self.output()[-6000:]}")

    def metric(self, name):
        code, body = self.request("GET", "/metrics")
        assert code == 200
        total = 0.0
        seen = False
        for line in body.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
                seen = True
        return total if seen else None

    def audit(self, event):
        code, body = self.request("GET", "/v1/events?since=0", token=self.api_token())
        assert code == 200, body
        return [e for e in json.loads(body)["events"] if e["event"] == event]

    def cleanup(self):
        self.kill9()
        ids = docker("ps", "-aq", "--filter", f"label=foundationd.project={self.project}").stdout.split()
        if ids:
            docker("rm", "-f", *ids, check=False)
        for n in docker("volume", "ls", "-q", "--filter",
                        f"label=foundationd.project={self.project}").stdout.split():
            docker("volume", "rm", n, check=False)
        self.log.close()


@pytest.fixture
def host(fd_bin, openbao_image, tmp_path):
    h = Host(fd_bin, openbao_image, tmp_path)
    yield h
    h.cleanup()


def test_first_boot_restart_wrong_passphrase(host):
    host.init_state()
    host.start()
    assert host.status()["locked"] is True
    code, body = host.request("POST", "/v1/unseal", {"passphrase": PASS})
    assert code == 200, body
    host.wait(host.converged, 180, "first boot to converge")
    s = host.status()
    assert s["vault"] == {"present": True, "initialized": True, "sealed": False}
    bao = host.seal_status()
    assert bao["initialized"] and not bao["sealed"] and bao["n"] == 3 and bao["t"] == 2
    assert host.metric("foundationd_vault_initialized") == 1
    assert host.metric("foundationd_vault_sealed") == 0
    assert host.metric("foundationd_vault_requests_total") > 0
    names = {r["kind"] + "/" + r["name"] for r in s["resources"]}
    assert {"vault/", "vault/mount/foundation", "vault/policy/app",
            "vault/kv/app/db-credentials"} <= names
    assert len(host.audit("vault.initialized")) == 1

    # Vault restarted (sealed again): unsealed from the state, no operator.
    docker("restart", "-t", "2", f"{host.project}-bao")
    host.wait(lambda: (host.seal_status() or {}).get("sealed") is False, 120,
              "Vault to be unsealed again after its restart")
    host.wait(host.converged, 120, "converged after the Vault restart")
    assert len(host.audit("vault.initialized")) == 1

    # Seal (Vault too), then a wrong passphrase: 403, and no key reaches Vault.
    # A reconcile is asked for first: a seal while its Vault step is unsealing
    # Vault must still leave Vault sealed (the seal waits for work in flight).
    code, body = host.request("POST", "/v1/reconcile", {}, token=host.api_token())
    assert code in (200, 202, 204), body
    code, body = host.request("POST", "/v1/seal", {}, token=host.api_token())
    assert code in (200, 204), body
    host.wait(lambda: (host.seal_status() or {}).get("sealed") is True, 30, "Vault sealed")
    code, body = host.request("POST", "/v1/unseal", {"passphrase": "not the passphrase"})
    assert code == 403, body
    assert "wrong_passphrase" in body
    time.sleep(1)
    bao = host.seal_status()
    assert bao["sealed"] is True and bao["progress"] == 0
    assert host.status()["locked"] is True
    # The right one: 200 and Vault unsealed in the same call.
    time.sleep(1.2)  # past the 1 s backoff of one failure
    code, body = host.request("POST", "/v1/unseal", {"passphrase": PASS})
    assert code == 200, body
    assert json.loads(body)["vault_unsealed"] is True
    assert host.seal_status()["sealed"] is False


def test_export_import_round_trip(host, fd_bin, openbao_image, tmp_path_factory):
    host.init_state()
    host.start(unattended=True)
    host.wait(host.converged, 180, "first boot to converge")
    exported = host.dir / "vault-keys.json"
    host.run("export-vault-keys", str(exported), "--state-dir", host.state)
    doc = json.loads(exported.read_text())
    text = exported.read_text()
    assert doc["format"] == "foundationd-vault-keys"
    assert "root_token" not in text and "keys_base64" not in text  # sealed, not plain
    host.stop()

    # A fresh host: new state, same passphrase, same Vault (its volume survives).
    fresh = tmp_path_factory.mktemp("fresh")
    state2 = str(fresh / "state")
    host.run("init", "--state-dir", state2, "--passphrase-file", str(host.passfile),
             "--kdf", "interactive")
    # Without the keys: blocked, never re-initialised.
    host.state = state2
    host.config.write_text(host.config.read_text().replace(str(host.dir / "state"), state2))
    docker("restart", "-t", "2", f"{host.project}-bao")
    host.start(unattended=True)
    host.wait(lambda: any(r["kind"] == "vault" and r["name"] == "" and r["status"] == "blocked"
                          for r in host.status()["resources"]), 120, "blocked without keys")
    assert host.seal_status()["sealed"] is True
    host.stop()
    wrong = fresh / "wrong"
    wrong.write_text("another passphrase entirely\n")
    r = host.run("import-vault-keys", str(exported), "--state-dir", state2,
                 "--passphrase-file", str(wrong), check=False)
    assert r.returncode == 1
    host.run("import-vault-keys", str(exported), "--state-dir", state2,
             "--passphrase-file", str(host.passfile))
    # Importing again is a no-op.
    r = host.run("import-vault-keys", str(exported), "--state-dir", state2,
                 "--passphrase-file", str(host.passfile))
    assert "nothing was changed" in r.stdout
    host.start(unattended=True)
    host.wait(lambda: (host.seal_status() or {}).get("sealed") is False, 120,
              "Vault unsealed with the imported keys")
    host.wait(host.converged, 120, "converged on the fresh state")


def test_kill9_during_first_boot(fd_bin, openbao_image, tmp_path_factory):
    trials = int(os.environ.get("FOUNDATIOND_VAULT_KILL_TRIALS", "50"))
    rng = random.Random(int(os.environ.get("FOUNDATIOND_VAULT_KILL_SEED", "0")) or None)
    # One calibration boot gives the span the kills are drawn from.
    first = Host(fd_bin, openbao_image, tmp_path_factory.mktemp("calib"))
    try:
        first.init_state()
        t0 = time.time()
        first.start(unattended=True)
        first.wait(first.converged, 180, "the calibration boot")
        span = time.time() - t0
    finally:
        first.cleanup()
    killed_mid_init = 0
    for trial in range(trials):
        h = Host(fd_bin, openbao_image, tmp_path_factory.mktemp(f"kill{trial}"))
        try:
            h.init_state()
            h.start(unattended=True)
            time.sleep(rng.uniform(0, span))
            h.kill9()
            had_keys_at_kill = os.path.exists(h.state)  # (state always exists; kept for the log)
            bao = h.seal_status()
            if bao and bao["initialized"]:
                killed_mid_init += 1
            h.start(unattended=True)
            h.wait(h.converged, 180, f"trial {trial}: converge after the kill")
            # Never a second init: one init in the audit log, one version of the material.
            assert len(h.audit("vault.initialized")) == 1, h.output()[-4000:]
            # Keys always recoverable: they are exportable, and they unseal Vault.
            h.run("export-vault-keys", str(h.dir / "keys.json"), "--state-dir", h.state)
            code, body = h.request("POST", "/v1/seal", {}, token=h.api_token())
            assert code in (200, 204), body
            h.wait(lambda: (h.seal_status() or {}).get("sealed") is True, 30, "sealed")
            code, body = h.request("POST", "/v1/unseal", {"passphrase": PASS})
            assert code == 200, body
            assert json.loads(body)["vault_unsealed"] is True, body
            del had_keys_at_kill
        finally:
            h.cleanup()
    print(f"kill -9 trials: {trials}, span {span:.2f} s, Vault already initialised at the kill "
          f"in {killed_mid_init}")
