"""End-to-end: the unseal path of the built daemon. Parallel wrong
passphrases get one KDF between them (the rest 429); TCP failures do not lock
out the Unix socket; the systemd credential is retried after its backoff;
keep_key_in_memory = false wipes the key once the unseal's converge is done."""
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import free_port, wait_for

PASS = "limits passphrase, long enough"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Serve:
    """`foundationd serve` on a state initialised with `kdf` and a spec with
    nothing in it: only the unseal path matters here."""

    def __init__(self, project, tmp_path, kdf="interactive", spec="", extra=""):
        self.p = project
        self.tmp = tmp_path
        self.port = free_port()
        self.state = str(tmp_path / "state")
        self.sock = str(tmp_path / "api.sock")
        self.spec = project.write(spec)
        self.config = tmp_path / "foundationd.toml"
        self.config.write_text(
            f'state_dir = "{self.state}"\n'
            f'[api]\nlisten = ["unix:{self.sock}", "tcp:127.0.0.1:{self.port}"]\n'
            f'token_file = "{tmp_path}/api-token"\n'
            f'[source]\nkind = "file"\npath = "{self.spec}"\n'
            f'[reconcile]\nresync_interval = "1h"\n' + extra)
        passfile = tmp_path / "pass"
        passfile.write_text(PASS + "\n")
        r = project.run("init", "--state-dir", self.state, "--passphrase-file", str(passfile),
                        "--kdf", kdf)
        assert r.returncode == 0, r.stderr
        self.proc = None
        self.log = open(tmp_path / "daemon.log", "a+")

    def start(self, env=None):
        self.proc = subprocess.Popen([self.p.bin, "serve", "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))
        wait_for(lambda: self.request("GET", "/healthz")[0] == 200, "the daemon to listen",
                 timeout=30, output=self.output)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def request(self, method, path, body=None, unix=False):
        conn = (UnixHTTPConnection(self.sock) if unix
                else http.client.HTTPConnection("127.0.0.1", self.port, timeout=60))
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read().decode()
        conn.close()
        return r.status, dict(r.getheaders()), data

    def unseal(self, passphrase, unix=False):
        return self.request("POST", "/v1/unseal", {"passphrase": passphrase}, unix=unix)


@pytest.fixture
def serve(project, tmp_path):
    s = Serve(project, tmp_path, kdf="moderate")
    yield s
    s.stop()
    s.log.close()


def test_parallel_wrong_unseals_get_one_kdf_and_the_rest_429(serve):
    serve.start()
    clients = 32
    barrier = threading.Barrier(clients)
    codes = []
    lock = threading.Lock()

    def guess(i):
        barrier.wait()
        code, headers, _ = serve.unseal(f"guess number {i}")
        with lock:
            codes.append((code, headers.get("Retry-After")))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(codes) == clients
    wrong = [c for c in codes if c[0] == 403]
    limited = [c for c in codes if c[0] == 429]
    # Exactly one passphrase was tested; every other answer is a 429 with a Retry-After.
    assert len(wrong) == 1, codes
    assert len(limited) == clients - 1, codes
    assert all(int(r) >= 1 for _, r in limited)
    out = serve.output()
    assert out.count("unseal.failed") == 1, out[-3000:]


def test_tcp_failures_do_not_lock_out_the_unix_socket(serve):
    serve.start()
    code, _, body = serve.unseal("a wrong guess over tcp")
    assert code == 403, body
    code, headers, body = serve.unseal(PASS)  # TCP is in its backoff now
    assert code == 429, body
    code, _, body = serve.unseal(PASS, unix=True)  # the trusted path is not
    assert code == 200, body
    assert json.loads(body)["locked"] is False


def test_the_credential_is_retried_after_its_backoff(serve, tmp_path):
    # Four failures on the trusted path, persisted (as a daemon before a
    # restart would have left them): an 8 s backoff from now.
    db = sqlite3.connect(os.path.join(serve.state, "state.db"))
    db.execute("UPDATE unseal_limits SET failures = 4, last_failure_at = ? WHERE path = 'trusted'",
               (int(time.time() * 1000),))
    db.commit()
    db.close()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "passphrase").write_text(PASS + "\n")
    os.chmod(creds / "passphrase", 0o600)
    serve.start(env={"CREDENTIALS_DIRECTORY": str(creds)})

    def unlocked():
        code, _, body = serve.request("GET", "/v1/status", unix=True)
        return code == 200 and json.loads(body)["locked"] is False

    wait_for(unlocked, "the credential's retry to unseal", timeout=30, output=serve.output)
    out = serve.output()
    assert "rate_limited" in out  # the first try met the backoff ...
    assert "unseal.credential_retry" in out  # ... and was tried again
    assert PASS not in out


KEYED = """
[credentials.app]
[credentials.app.fields]
password = { generate = "password" }

[containers.@keyed]
image = "${versions.busybox}"
command = ["sleep", "3600"]
env = { PASSWORD = "${credentials.app.password}" }
stop_timeout = "1s"
"""


def test_keep_key_in_memory_false_drops_the_key_after_the_converge(project, tmp_path):
    s = Serve(project, tmp_path, spec=KEYED, extra="[unlock]\nkeep_key_in_memory = false\n")
    try:
        s.start()
        code, _, body = s.unseal(PASS, unix=True)
        assert code == 200, body

        def status():
            return json.loads(s.request("GET", "/v1/status", unix=True)[2])

        def keyed_running():
            c = project.container("keyed")
            return c is not None and c["State"]["Running"]

        # The converge the unseal started used the key (a generated credential
        # in a container) ...
        wait_for(keyed_running, "the keyed container", timeout=60, output=s.output)
        # ... and then the key is gone: locked again, said in the log.
        wait_for(lambda: status()["locked"] is True, "the key to be dropped", timeout=30,
                 output=s.output)
        assert "unseal.key_dropped" in s.output()
        env = dict(e.split("=", 1) for e in project.container("keyed")["Config"]["Env"])
        assert len(env["PASSWORD"]) == 32
        assert env["PASSWORD"] not in s.output()
    finally:
        s.stop()
        s.log.close()


def test_rekey_rotate_data_key_through_the_cli(project, tmp_path):
    state = str(tmp_path / "state")
    old = tmp_path / "old-pass"
    old.write_text(PASS + "\n")
    new = tmp_path / "new-pass"
    new.write_text("a brand new passphrase\n")
    r = project.run("init", "--state-dir", state, "--passphrase-file", str(old), "--kdf",
                    "interactive")
    assert r.returncode == 0, r.stderr
    spec = project.write("[credentials.app]\n[credentials.app.fields]\n"
                         'password = { generate = "password" }\n')
    r = project.run("apply", "--once", "--spec", spec, "--state-dir", state,
                    "--passphrase-file", str(old))
    assert r.returncode == 0, r.stdout + r.stderr
    r = project.run("secret", "show", "app.password", "--state-dir", state,
                    "--passphrase-file", str(old))
    assert r.returncode == 0, r.stderr
    value = r.stdout.strip()
    r = project.run("rekey", "--rotate-data-key", "--state-dir", state, "--passphrase-file",
                    str(old), "--new-passphrase-file", str(new), "--kdf", "interactive")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "new data key" in r.stdout
    r = project.run("secret", "show", "app.password", "--state-dir", state,
                    "--passphrase-file", str(new))
    assert r.returncode == 0 and r.stdout.strip() == value, r.stderr
    r = project.run("secret", "show", "app.password", "--state-dir", state,
                    "--passphrase-file", str(old))
    assert r.returncode == 1 and "wrong passphrase" in r.stderr
