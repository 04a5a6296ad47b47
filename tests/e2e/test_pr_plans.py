"""End-to-end plans on pull requests with the real forge (Gitea 1.26, as in
test_forgejo.py) and the built foundationd as a black box: the spec's
[forgejo.webhooks] subscribes the hook to pull requests; opening a pull
request that adds a container gets one comment with that plan; a second push
to its branch updates the same comment; the host is untouched until the
merge, whose push webhook then applies it; a pull request with an invalid
spec gets a comment with the located error. The comment is posted as the
forge admin of the spec (the daemon config has no [source] token)."""
import base64
import http.client
import json
import os
import subprocess

from conftest import free_port, wait_for
from test_forgejo import PASS, bridge_gateway, forge_image

MARKER = "<!-- foundationd:plan -->"


def api(method, port, path, auth, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    return r.status, (json.loads(text) if text.strip().startswith(("{", "[")) else text)


def test_pull_request_plans_are_commented_and_nothing_is_applied_before_merge(project, tmp_path):
    image = forge_image()
    gateway = bridge_gateway()
    forge_port = free_port()
    fd_port = free_port()
    state = str(tmp_path / "state")
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    versions = f'[images]\nbusybox = "{project.image}"\nforge = "{image}"\n'
    (tmp_path / "VERSIONS").write_text(versions)
    body = f"""
[credentials.forgejo-admin]
[credentials.forgejo-admin.fields]
password = {{ generate = "password", length = 24 }}
[credentials.forgejo-webhook]
[credentials.forgejo-webhook.fields]
secret = {{ generate = "hex", bytes = 32 }}

[containers."@forge"]
image = "${{versions.forge}}"
ports = ["127.0.0.1:{forge_port}:3000"]
[containers."@forge".healthcheck]
test = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/api/healthz"]
interval = "1s"
retries = 120

[forgejo]
container = "@forge"
url = "http://127.0.0.1:{forge_port}"
[forgejo.admin]
username = "platform-admin"
email = "platform-AT-example.org"
password = "${{credentials.forgejo-admin.password}}"
[forgejo.orgs.olsitec]
[forgejo.repos."olsitec/foundation"]
[forgejo.webhooks."olsitec/foundation"]
url = "http://{gateway}:{fd_port}/v1/hooks/forgejo"
secret = "${{credentials.forgejo-webhook.secret}}"
"""
    r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile), "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    text = (f'spec_version = 1\nproject = "{project.name}"\nversions = "VERSIONS"\n' + body) \
        .replace("@", project.name + "-").replace("-AT-", "@")
    spec = tmp_path / "foundation.toml"
    spec.write_text(text)
    r = project.run("apply", "--once", "--spec", str(spec), "--state-dir", state, "--passphrase-file", str(passfile))
    assert r.returncode == 0, r.stdout + r.stderr
    pw = project.run("secret", "show", "forgejo-admin.password", "--state-dir", state,
                     "--passphrase-file", str(passfile)).stdout.strip()
    admin = f"platform-admin:{pw}"
    code, hooks = api("GET", forge_port, "/api/v1/repos/olsitec/foundation/hooks", admin)
    assert code == 200 and "pull_request" in hooks[0]["events"], hooks

    config = tmp_path / "foundationd.toml"
    config.write_text(
        f'state_dir = "{state}"\n'
        f'[api]\nlisten = ["unix:{tmp_path}/api.sock", "tcp:127.0.0.1:{fd_port}", "tcp:{gateway}:{fd_port}"]\n'
        f'token_file = "{tmp_path}/api-token"\n'
        f'[source]\nkind = "git"\nurl = "http://127.0.0.1:{forge_port}/olsitec/foundation.git"\n'
        'branch = "main"\nspec_path = "foundation.toml"\npoll_interval = "1h"\n'
        'webhook_secret = "${credentials.forgejo-webhook.secret}"\n'
        '[reconcile]\nresync_interval = "1h"\n[unlock]\nkdf = "interactive"\n')
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "passphrase").write_text(PASS + "\n")
    env = dict(os.environ, CREDENTIALS_DIRECTORY=str(creds))
    env.pop("NOTIFY_SOCKET", None)
    log = open(tmp_path / "daemon.log", "w+")

    def output():
        log.flush()
        log.seek(0)
        return log.read()

    work = tmp_path / "work"
    work.mkdir()
    header = "Authorization: Basic " + base64.b64encode(admin.encode()).decode()
    genv = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
                GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org",
                GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", GIT_CONFIG_COUNT="1",
                GIT_CONFIG_KEY_0="http.extraHeader", GIT_CONFIG_VALUE_0=header)
    remote = f"http://127.0.0.1:{forge_port}/olsitec/foundation.git"

    def git(*args):
        g = subprocess.run(["git", *args], cwd=str(work), capture_output=True, text=True, env=genv, timeout=120)
        assert g.returncode == 0, f"git {args}: {g.stdout}{g.stderr}"
        return g.stdout.strip()

    def commit(spec_text, message, branch):
        (work / "foundation.toml").write_text(spec_text)
        git("add", "-A")
        git("commit", "-q", "-m", message)
        git("push", "-q", remote, f"HEAD:refs/heads/{branch}")
        return git("rev-parse", "HEAD")

    def plan_comments(number):
        code, comments = api("GET", forge_port, f"/api/v1/repos/olsitec/foundation/issues/{number}/comments", admin)
        assert code == 200, comments
        return [c for c in comments if c["body"].startswith(MARKER)]

    def open_pr(branch, title):
        # The forge records a pushed branch from a queue: until it has, a pull
        # request from it is 404. Retry until it is opened.
        opened = {}

        def attempt():
            code, pr = api("POST", forge_port, "/api/v1/repos/olsitec/foundation/pulls", admin,
                           {"head": branch, "base": "main", "title": title})
            assert code in (201, 404), pr
            opened["pr"] = pr
            return code == 201
        wait_for(attempt, f"the forge opened a pull request from {branch}", timeout=60, interval=0.5)
        return opened["pr"]["number"]

    web = f'\n[containers."{project.name}-web"]\nimage = "${{versions.busybox}}"\ncommand = ["sleep", "3600"]\n'
    web2 = f'\n[containers."{project.name}-webtwo"]\nimage = "${{versions.busybox}}"\ncommand = ["sleep", "3600"]\n'
    proc = None
    try:
        git("init", "-q", "-b", "main")
        (work / "VERSIONS").write_text(versions)
        first = commit(text, "day zero", "main")
        proc = subprocess.Popen([project.bin, "serve", "--config", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, env=env)

        def status():
            conn = http.client.HTTPConnection("127.0.0.1", fd_port, timeout=5)
            conn.request("GET", "/v1/status")
            r = conn.getresponse()
            doc = json.loads(r.read().decode())
            conn.close()
            return doc

        wait_for(lambda: status()["spec"]["applied_revision"] == first, "the day-zero commit applied",
                 output=output)

        # A pull request that adds a container: one comment with its plan.
        git("checkout", "-q", "-b", "add-web")
        head1 = commit(text + web, "add web", "add-web")
        number = open_pr("add-web", "add web")
        wait_for(lambda: any(head1[:12] in c["body"] for c in plan_comments(number)),
                 "the plan comment on the pull request", timeout=60, output=output)
        [comment] = plan_comments(number)
        assert f"{project.name}-web" in comment["body"] and "create" in comment["body"], comment["body"]
        assert "cannot be applied" not in comment["body"], comment["body"]
        assert pw not in comment["body"]
        assert project.container("web") is None  # nothing applied
        assert status()["spec"]["applied_revision"] == first

        # A second push to the branch: the same comment, updated.
        head2 = commit(text + web + web2, "add webtwo", "add-web")
        wait_for(lambda: any(head2[:12] in c["body"] for c in plan_comments(number)),
                 "the plan comment updated", timeout=60, output=output)
        [updated] = plan_comments(number)
        assert updated["id"] == comment["id"], (updated, comment)
        assert f"{project.name}-webtwo" in updated["body"], updated["body"]
        assert project.container("web") is None and project.container("webtwo") is None
        assert status()["spec"]["applied_revision"] == first

        # The merge: the forge's push webhook brings it to the host. The forge
        # checks mergeability in the background after each push and answers
        # 405 "Please try again later" until it has: retry until it merges.
        merge = {}

        def merged():
            merge["code"], merge["body"] = api(
                "POST", forge_port, f"/api/v1/repos/olsitec/foundation/pulls/{number}/merge", admin,
                {"Do": "merge"})
            assert merge["code"] in (200, 405), merge
            return merge["code"] == 200
        wait_for(merged, "the forge merged the pull request", timeout=60, interval=1)
        wait_for(lambda: (project.container("webtwo") or {}).get("State", {}).get("Running") is True,
                 "the merged pull request applied", timeout=90, output=output)

        # A pull request with an invalid spec: a comment with the located error.
        git("fetch", "-q", remote, "main")
        git("checkout", "-q", "-b", "broken", "FETCH_HEAD")
        bad = commit((work / "foundation.toml").read_text() + '\n[containers."x"]\nimagee = "busybox"\n',
                     "typo", "broken")
        bad_pr = open_pr("broken", "typo")
        wait_for(lambda: any(bad[:12] in c["body"] for c in plan_comments(bad_pr)),
                 "the invalid pull request's comment", timeout=60, output=output)
        [c] = plan_comments(bad_pr)
        assert "cannot be applied" in c["body"] and "foundation.toml:" in c["body"] and "imagee" in c["body"], c["body"]
        assert pw not in output()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
