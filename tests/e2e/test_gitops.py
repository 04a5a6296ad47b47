"""End-to-end GitOps: the spec in a real git repository served by Debian's
`git http-backend` (tests/peers/git_http_server.py) with token auth, real
`git push`es whose post-receive hook delivers Forgejo-style signed webhooks,
and the built foundationd as a black box: push -> webhook -> converged; a bad
signature; another branch; an invalid spec pushed then fixed; the git server
stopped and restarted; the token never in argv or logs."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from conftest import docker, free_port, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIT_SERVER = os.path.join(ROOT, "tests", "peers", "git_http_server.py")
PASS = "gitops passphrase, long enough"

CREDS = """
[credentials.gitops]
[credentials.gitops.fields]
secret = { generate = "hex", bytes = 32 }
token = { generate = "hex", bytes = 20 }
"""


class GitServer:
    def __init__(self, root, token_file, log_path):
        self.root = root
        self.token_file = token_file
        self.port = free_port()
        self.log_path = log_path
        self.proc = None

    def start(self):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([sys.executable, GIT_SERVER, "serve", "--root", self.root,
                                      "--port", str(self.port), "--token-file", self.token_file],
                                     stdout=log, stderr=log)
        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(up, "the git server to listen", timeout=20)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class GitOps:
    """A spec repository on a git server, a working clone, and foundationd
    serving from it."""

    def __init__(self, project, tmp_path, poll="1h", unlock=True):
        self.p = project
        self.tmp = tmp_path
        self.state = str(tmp_path / "state")
        self.passfile = tmp_path / "pass"
        self.passfile.write_text(PASS + "\n")
        self.port = free_port()
        self.token_file = str(tmp_path / "api-token")
        self.config = tmp_path / "foundationd.toml"

        # Day zero: the credentials exist before the git source needs them
        # (`apply --once` from a local file generates them).
        r = project.run("init", "--state-dir", self.state, "--passphrase-file", str(self.passfile),
                        "--kdf", "interactive")
        assert r.returncode == 0, r.stderr
        boot = project.write(CREDS)
        r = project.run("apply", "--once", "--spec", boot, "--state-dir", self.state,
                        "--passphrase-file", str(self.passfile))
        assert r.returncode == 0, r.stdout + r.stderr
        self.secret = self.show("gitops.secret")
        self.git_token = self.show("gitops.token")
        assert len(self.secret) == 64 and len(self.git_token) == 40

        # The git server, requiring the token.
        self.srv_root = str(tmp_path / "srv")
        os.makedirs(self.srv_root)
        self.server_token = tmp_path / "server-token"
        self.server_token.write_text(self.git_token + "\n")
        self.bare = os.path.join(self.srv_root, "foundation.git")
        self.git("init", "-q", "--bare", "-b", "main", self.bare, cwd=str(tmp_path))
        self.git("config", "http.receivepack", "true", cwd=self.bare)
        hook = os.path.join(self.bare, "hooks", "post-receive")
        with open(hook, "w") as f:
            f.write(f"#!/bin/sh\nexec {sys.executable} {GIT_SERVER} hook\n")
        os.chmod(hook, 0o755)
        with open(os.path.join(self.bare, "webhook.json"), "w") as f:
            json.dump({"url": f"http://127.0.0.1:{self.port}/v1/hooks/forgejo",
                       "secret": self.secret, "repository": "olsitec/foundation"}, f)
        self.server = GitServer(self.srv_root, str(self.server_token), str(tmp_path / "git-server.log"))
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.port}/foundation.git"

        # The working clone the "operator" pushes from.
        self.work = str(tmp_path / "work")
        os.makedirs(self.work)
        self.git("init", "-q", "-b", "main", cwd=self.work)
        self.git("remote", "add", "origin", self.url, cwd=self.work)
        (tmp_path / "work" / "VERSIONS").write_text(f'[images]\nbusybox = "{project.image}"\n')

        self.config.write_text(
            f'state_dir = "{self.state}"\n'
            f'[api]\nlisten = ["unix:{tmp_path}/api.sock", "tcp:127.0.0.1:{self.port}"]\n'
            f'token_file = "{self.token_file}"\n'
            f'[source]\nkind = "git"\nurl = "{self.url}"\nbranch = "main"\n'
            f'spec_path = "foundation.toml"\npoll_interval = "{poll}"\n'
            'token = "${credentials.gitops.token}"\n'
            'webhook_secret = "${credentials.gitops.secret}"\n'
            f'[reconcile]\nresync_interval = "1h"\n'
            f'[unlock]\nkdf = "interactive"\n')
        self.unlock = unlock
        self.proc = None
        self.log = open(tmp_path / "daemon.log", "w+")

    # --- helpers -----------------------------------------------------------
    def show(self, ref):
        r = self.p.run("secret", "show", ref, "--state-dir", self.state,
                       "--passphrase-file", str(self.passfile))
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def git_env(self):
        # The operator's pushes authenticate like the daemon does: the token
        # in the environment, never in argv (the /proc scan below checks argv).
        header = "Authorization: Basic " + base64.b64encode(f"tester:{self.git_token}".encode()).decode()
        return dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
                    GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org",
                    GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0",
                    GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
                    GIT_CONFIG_VALUE_0=header)

    def git(self, *args, cwd=None):
        r = subprocess.run(["git", *args], cwd=cwd or self.work, capture_output=True, text=True,
                           env=self.git_env(), timeout=120)
        assert r.returncode == 0, f"git {args}: {r.stdout}{r.stderr}"
        return r.stdout.strip()

    def spec(self, body):
        head = f'spec_version = 1\nproject = "{self.p.name}"\nversions = "VERSIONS"\n'
        return head + CREDS + body.replace("@", self.p.name + "-")

    def push(self, body, message, branch="main"):
        with open(os.path.join(self.work, "foundation.toml"), "w") as f:
            f.write(self.spec(body))
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        commit = self.git("rev-parse", "HEAD")
        self.git("push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        return commit

    def start(self):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        if self.unlock:
            creds = self.tmp / "creds"
            creds.mkdir(exist_ok=True)
            (creds / "passphrase").write_text(PASS + "\n")
            env["CREDENTIALS_DIRECTORY"] = str(creds)
        self.proc = subprocess.Popen([self.p.bin, "serve", "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_for(lambda: self.request("GET", "/healthz")[0] == 200, "the daemon's API", output=self.output)

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def request(self, method, path, body=None, headers=None, token=False):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            h = dict(headers or {})
            if token:
                h["Authorization"] = "Bearer " + open(self.token_file).read().strip()
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read().decode()
            conn.close()
            return r.status, data
        except OSError:
            return 0, ""

    def status(self):
        code, body = self.request("GET", "/v1/status")
        assert code == 200, body
        return json.loads(body)

    def events(self):
        code, body = self.request("GET", "/v1/events?since=0&limit=1000", token=True)
        assert code == 200, body
        return json.loads(body)["events"]

    def metric(self, name):
        _, body = self.request("GET", "/metrics")
        total = 0.0
        for line in body.splitlines():
            if line.startswith(name):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def deliver(self, payload, event="push", delivery=None, secret=None, prefix="X-Forgejo-"):
        body = json.dumps(payload).encode()
        sig = hmac.new((secret or self.secret).encode(), body, hashlib.sha256).hexdigest()
        return self.request("POST", "/v1/hooks/forgejo", body=body, headers={
            "Content-Type": "application/json", prefix + "Event": event,
            prefix + "Delivery": delivery or str(uuid.uuid4()), prefix + "Signature": sig})

    def wait(self, cond, what, timeout=60):
        wait_for(cond, what, timeout, self.output)

    def running(self, short):
        c = self.p.container(short)
        return c is not None and c["State"]["Running"]

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.server.stop()
        self.log.close()


@pytest.fixture
def gitops(project, tmp_path):
    g = GitOps(project, tmp_path)
    yield g
    g.close()


ONE = """
[containers.@web]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
"""

TWO = ONE + """
[containers.@api]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
"""

INVALID = ONE + """
[containers.@broken]
image = "${versions.busybox}"
comand = ["sleep", "3600"]
restart = "sometimes"
"""


def test_push_webhook_converge_bad_signature_other_branch_invalid_then_fixed(gitops):
    g = gitops
    first = g.push(ONE, "one container")
    g.start()
    # The first fetch happens at start (no webhook needed).
    g.wait(lambda: g.running("web"), "web from the first fetch")
    g.wait(lambda: g.status()["spec"]["applied_revision"] == first, "first revision applied")
    st = g.status()
    assert st["spec"]["source"] == f"git:{g.url}#main:foundation.toml"
    assert st["spec"]["revision"] == first
    assert st["spec"]["fetch_error"] is None and st["spec"]["last_fetch"]

    # push -> webhook (the post-receive hook delivers it) -> fetch -> converged.
    fetches = g.metric("foundationd_spec_fetches_total")
    second = g.push(TWO, "add api")
    g.wait(lambda: g.running("api"), "api after the push's webhook", timeout=30)
    g.wait(lambda: g.status()["spec"]["applied_revision"] == second, "second revision applied")
    assert g.metric('foundationd_webhook_deliveries_total{result="accepted"}') >= 1
    assert g.metric("foundationd_spec_fetches_total") > fetches
    ev = g.events()
    accepted = [e for e in ev if e["event"] == "webhook.accepted"]
    assert accepted and accepted[-1]["fields"]["commit"] == second
    assert any(e["event"] == "spec.applied" and e["fields"]["revision"] == second for e in ev)
    _, metrics = g.request("GET", "/metrics")
    assert f'foundationd_spec_info{{revision="{second}"}} 1' in metrics

    # A bad signature is 401 and fetches nothing; so is a missing one.
    fetches = g.metric("foundationd_spec_fetches_total")
    code, body = g.deliver({"ref": "refs/heads/main", "after": "1" * 40}, secret="not-the-secret")
    assert code == 401, body
    code, body = g.request("POST", "/v1/hooks/forgejo", body=b'{"ref":"refs/heads/main"}',
                           headers={"X-Forgejo-Event": "push"})
    assert code == 401, body
    time.sleep(1.5)
    assert g.metric("foundationd_spec_fetches_total") == fetches
    assert g.metric('foundationd_webhook_deliveries_total{result="bad_signature"}') == 2
    assert any(e["event"] == "webhook.rejected" for e in g.events())

    # A push to another branch: delivered, 200 ignored, nothing changes.
    g.push(TWO + ONE.replace("@web", "@other"), "feature work", branch="feature")
    g.wait(lambda: any(e["event"] == "webhook.ignored" and e["fields"].get("ref") == "refs/heads/feature"
                       for e in g.events()), "the feature branch's delivery ignored")
    assert g.p.container("other") is None
    code, body = g.deliver({"ref": "refs/heads/feature", "after": "2" * 40})
    assert code == 200 and json.loads(body)["result"] == "ignored"
    code, body = g.deliver({"zen": "hi"}, event="ping")
    assert code == 200 and json.loads(body)["result"] == "ignored"
    # Gitea's header names are accepted as well.
    code, body = g.deliver({"ref": "refs/heads/feature", "after": "2" * 40}, prefix="X-Gitea-")
    assert code == 200, body

    # A repeated delivery id is processed once.
    did = str(uuid.uuid4())
    code, body = g.deliver({"ref": "refs/heads/main", "after": second}, delivery=did)
    assert code == 202, body
    code, body = g.deliver({"ref": "refs/heads/main", "after": second}, delivery=did)
    assert code == 200 and json.loads(body)["result"] == "duplicate", body

    # An invalid spec is rejected with every located error; the last good
    # revision stays in force.
    bad = g.push(INVALID, "typo")
    g.wait(lambda: g.status()["spec"]["revision"] == bad, "the bad revision seen")
    st = g.status()
    err = st["spec"]["last_error"]
    assert bad[:12] in err and second[:12] in err, err
    assert "foundation.toml:" in err and 'did you mean "command"' in err, err
    assert "sometimes" in err, err  # the second error is there too
    assert st["spec"]["applied_revision"] == second
    assert g.p.container("broken") is None
    assert g.running("web") and g.running("api")
    rejected = [e for e in g.events() if e["event"] == "spec.rejected"]
    assert rejected and rejected[-1]["fields"]["revision"] == bad
    # `foundationd status` shows both revisions and the errors.
    r = g.p.run("status", "--config", str(g.config))
    assert bad[:12] in r.stdout and second[:12] in r.stdout, r.stdout
    assert 'did you mean "command"' in r.stdout, r.stdout
    # A resync still runs the last good spec: remove a container, it comes back.
    docker("rm", "-f", f"{g.p.name}-api")
    g.wait(lambda: g.running("api"), "api restored while the bad revision is the newest")

    # Fixed: the next push converges and clears the error.
    fixed = g.push(TWO.replace('"3600"', '"3601"'), "fix")
    g.wait(lambda: g.status()["spec"]["applied_revision"] == fixed, "the fixed revision applied")
    st = g.status()
    assert st["spec"]["last_error"] is None
    assert st["spec"]["revision"] == fixed
    assert g.p.container("api")["Config"]["Cmd"] == ["sleep", "3601"]

    # No secret in the daemon's log.
    out = g.output()
    assert g.secret not in out and g.git_token not in out


def test_git_server_down_then_back_auth_refused_and_token_never_in_argv(gitops):
    g = gitops
    first = g.push(ONE, "one")
    g.start()
    g.wait(lambda: g.status()["spec"]["applied_revision"] == first, "first revision applied")

    # The server stops: a delivery is accepted, the fetch fails, status says why.
    g.server.stop()
    code, _ = g.deliver({"ref": "refs/heads/main", "after": "3" * 40})
    assert code == 202
    g.wait(lambda: g.status()["spec"]["fetch_error"] is not None, "the fetch failure in status")
    st = g.status()
    assert "unreachable" in st["spec"]["fetch_error"], st["spec"]
    assert st["spec"]["applied_revision"] == first  # the last good spec stays
    assert g.running("web")
    assert g.metric('foundationd_spec_fetches_total{result="failed"}') >= 1
    r = g.p.run("status", "--config", str(g.config))
    assert "unreachable" in r.stdout, r.stdout

    # Back up: the retry (backoff) recovers without any delivery.
    g.server.start()
    g.wait(lambda: g.status()["spec"]["fetch_error"] is None, "recovery after the restart", timeout=60)
    second = g.push(TWO, "two")
    g.wait(lambda: g.status()["spec"]["applied_revision"] == second, "converged after the restart")
    assert g.running("api")
    ev = [e["event"] for e in g.events()]
    assert "spec.fetch_failed" in ev and "spec.fetch_recovered" in ev

    # The server refuses the token: reported as an auth failure, recovered when fixed.
    g.server_token.write_text("another-token\n")
    code, _ = g.deliver({"ref": "refs/heads/main", "after": "4" * 40})
    assert code == 202
    g.wait(lambda: "refused the credentials" in (g.status()["spec"]["fetch_error"] or ""),
           "the auth failure in status")
    g.server_token.write_text(g.git_token + "\n")

    # While a fetch runs (the server answers slowly), no process's argv holds
    # the token (or the Basic header made from it).
    g.wait(lambda: g.status()["spec"]["fetch_error"] is None, "recovery with the right token")
    slow = os.path.join(g.srv_root, ".slow")
    with open(slow, "w") as f:
        f.write("1.5")
    basic = base64.b64encode(f"foundationd:{g.git_token}".encode()).decode()
    code, _ = g.deliver({"ref": "refs/heads/main", "after": "5" * 40})
    assert code == 202
    seen_fetch = False
    deadline = time.time() + 20
    while time.time() < deadline and not seen_fetch:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            assert g.git_token not in argv and basic not in argv, argv
            if "fetch" in argv and g.url in argv and "foundation.git" in argv and "git" in argv:
                seen_fetch = True
        time.sleep(0.02)
    os.remove(slow)
    assert seen_fetch, "never saw the daemon's git fetch running"
    out = g.output()
    assert g.git_token not in out and basic not in out and g.secret not in out
    st = json.dumps(g.status())
    assert g.git_token not in st and basic not in st


def test_locked_webhook_is_503_and_polling_is_the_fallback(project, tmp_path):
    g = GitOps(project, tmp_path, poll="2s", unlock=False)
    try:
        first = g.push(ONE, "one")
        g.start()
        # Locked: the token is sealed, so nothing is fetched; the webhook is 503.
        code, body = g.deliver({"ref": "refs/heads/main", "after": first})
        assert code == 503 and "locked" in body, body
        assert g.metric('foundationd_webhook_deliveries_total{result="locked"}') == 1
        g.wait(lambda: "locked" in (g.status()["spec"]["fetch_error"] or ""), "locked in status")
        code, body = g.request("POST", "/v1/unseal", body=json.dumps({"passphrase": PASS}))
        assert code == 200, body
        g.wait(lambda: g.running("web"), "web after unseal")
        # Webhooks lost (the hook's target is wrong): polling picks up the push.
        with open(os.path.join(g.bare, "webhook.json"), "w") as f:
            json.dump({"url": "http://127.0.0.1:9/lost", "secret": g.secret}, f)
        second = g.push(TWO, "two, webhook lost")
        g.wait(lambda: g.status()["spec"]["applied_revision"] == second, "polled revision applied",
               timeout=60)
        assert g.running("api")

        # A restart keeps the last good spec before any fetch (even locked).
        g.proc.send_signal(signal.SIGTERM)
        assert g.proc.wait(timeout=30) == 0
        g.server.stop()
        g.start()
        st = g.status()
        assert st["locked"] is True
        assert st["spec"]["applied_revision"] == second
        assert "spec.restored" in g.output()
        # Fetched again after the unseal, the revision stays applied in the
        # history: a second restart restores it too.
        g.server.start()
        code, body = g.request("POST", "/v1/unseal", body=json.dumps({"passphrase": PASS}))
        assert code == 200, body
        g.wait(lambda: g.status()["spec"]["last_fetch"] is not None
               and g.status()["spec"]["fetch_error"] is None, "a fetch after the restart")
        g.proc.send_signal(signal.SIGTERM)
        assert g.proc.wait(timeout=30) == 0
        g.start()
        assert g.status()["spec"]["applied_revision"] == second
    finally:
        g.close()


def test_ci_helpers_check_and_plan_json_on_a_clone(project, tmp_path):
    """On a fresh clone of the spec repository: `check` (what
    config/examples/forgejo-workflow.yml runs; offline, located errors, exit
    0/1) and `plan --json` (an operator's, on the host; a JSON document on
    stdout, exit 2 = changes)."""
    origin = tmp_path / "origin"
    origin.mkdir()
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org", GIT_CONFIG_NOSYSTEM="1")

    def git(*args, cwd):
        r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
    git("init", "-q", "-b", "main", cwd=origin)
    (origin / "VERSIONS").write_text(f'[images]\nbusybox = "{project.image}"\n')
    head = f'spec_version = 1\nproject = "{project.name}"\nversions = "VERSIONS"\n'
    (origin / "foundation.toml").write_text(head + INVALID.replace("@", project.name + "-"))
    git("add", "-A", cwd=origin)
    git("commit", "-q", "-m", "pr", cwd=origin)
    clone = tmp_path / "checkout"
    git("clone", "-q", f"file://{origin}", str(clone), cwd=tmp_path)

    def run(*args):
        return subprocess.run([project.bin, *args], cwd=clone, capture_output=True, text=True,
                              env=dict(os.environ, NO_COLOR="1"), timeout=120)
    r = run("check", "foundation.toml")
    assert r.returncode == 1
    assert "foundation.toml:" in r.stderr and ": error:" in r.stderr and 'did you mean "command"' in r.stderr
    (clone / "foundation.toml").write_text(head + ONE.replace("@", project.name + "-"))
    r = run("check", "foundation.toml")
    assert r.returncode == 0, r.stderr
    r = run("plan", "--spec", "foundation.toml", "--json", "--state-dir", str(tmp_path / "nostate"))
    assert r.returncode == 2, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["has_changes"] is True
    assert project.name + "-web" in r.stdout
