"""End-to-end with a real forge (FOUNDATIOND_FORGEJO_IMAGE: Gitea v1.26 built
by tests/peers/forgejo-image, since Forgejo's own module is refused by the Go
module proxy here) and the built foundationd as a black box:

1. day zero: `apply --once` from a local file starts the forge as a managed
   container and bootstraps it (admin, organisation, repository, webhook
   pointing at foundationd), checked through the forge's own API;
2. `foundationd serve` then tracks that repository (`[source] kind = "git"`);
   a real `git push` to the forge makes the forge deliver its signed push
   webhook to foundationd, which fetches and applies the pushed commit (a new
   container appears). No polling: poll_interval is an hour.
Between the two, the repository's Actions secret (from a credential) and
variable are set, deleted / changed by hand and restored by the next apply,
and the secret is written again by `foundationd rotate` of its credential."""
import base64
import http.client
import ipaddress
import json
import os
import subprocess

from conftest import docker, free_port, peer_image, wait_for

PASS = "forgejo e2e passphrase, long enough"


def forge_image():
    return peer_image("FOUNDATIOND_FORGEJO_IMAGE", "tests/peers/forgejo-image")


def http_json(method, url_host, port, path, user=None, password=None, body=None):
    try:
        conn = http.client.HTTPConnection(url_host, port, timeout=15)
        headers = {}
        if user:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        body = r.read().decode()
        conn.close()
        return r.status, (json.loads(body) if body.strip().startswith(("{", "[")) else body)
    except OSError:
        return 0, None


def bridge_gateway():
    r = docker("network", "inspect", "bridge")
    cfg = json.loads(r.stdout)[0]["IPAM"]["Config"][0]
    if cfg.get("Gateway"):
        return cfg["Gateway"]
    return str(next(ipaddress.ip_network(cfg["Subnet"]).hosts()))  # the Engine's default: .1


def test_bootstrap_then_push_webhook_from_the_forge(project, tmp_path):
    image = forge_image()
    gateway = bridge_gateway()  # how the forge's container reaches foundationd on the host
    forge_port = free_port()
    fd_port = free_port()
    state = str(tmp_path / "state")
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    (tmp_path / "VERSIONS").write_text(
        f'[images]\nbusybox = "{project.image}"\nforge = "{image}"\n')

    body = f"""
[credentials.forgejo-admin]
[credentials.forgejo-admin.fields]
password = {{ generate = "password", length = 24 }}
[credentials.forgejo-webhook]
[credentials.forgejo-webhook.fields]
secret = {{ generate = "hex", bytes = 32 }}
[credentials.ci-s3]
[credentials.ci-s3.fields]
key = {{ generate = "hex", bytes = 20 }}

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
[forgejo.repos."olsitec/foundation".actions_secrets]
CI_S3_KEY = "${{credentials.ci-s3.key}}"
[forgejo.repos."olsitec/foundation".actions_variables]
CI_BUCKET = "artifacts"
[forgejo.webhooks."olsitec/foundation"]
url = "http://{gateway}:{fd_port}/v1/hooks/forgejo"
secret = "${{credentials.forgejo-webhook.secret}}"
"""
    r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile), "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    # Written here, not by project.write: the admin's email has an '@'.
    text = (f'spec_version = 1\nproject = "{project.name}"\nversions = "VERSIONS"\n' + body) \
        .replace("@", project.name + "-").replace("-AT-", "@")
    spec = str(tmp_path / "foundation.toml")
    with open(spec, "w") as f:
        f.write(text)

    # 1. Day zero.
    r = project.run("apply", "--once", "--spec", spec, "--state-dir", state, "--passphrase-file", str(passfile))
    assert r.returncode == 0, r.stdout + r.stderr
    pw = project.run("secret", "show", "forgejo-admin.password", "--state-dir", state,
                     "--passphrase-file", str(passfile)).stdout.strip()
    assert len(pw) == 24
    assert pw not in r.stdout + r.stderr
    code, user = http_json("GET", "127.0.0.1", forge_port, "/api/v1/user", "platform-admin", pw)
    assert code == 200 and user["is_admin"] is True, user
    code, repo = http_json("GET", "127.0.0.1", forge_port, "/api/v1/repos/olsitec/foundation", "platform-admin", pw)
    assert code == 200, repo
    code, hooks = http_json("GET", "127.0.0.1", forge_port, "/api/v1/repos/olsitec/foundation/hooks",
                            "platform-admin", pw)
    assert code == 200 and len(hooks) == 1, hooks
    assert hooks[0]["config"]["url"] == f"http://{gateway}:{fd_port}/v1/hooks/forgejo"
    actions = "forgejo.actions/repo/olsitec/foundation: "
    assert actions + "secret CI_S3_KEY created, variable CI_BUCKET created" in r.stdout, r.stdout
    # A second apply is a no-op for the forge.
    r = project.run("apply", "--once", "--spec", spec, "--state-dir", state, "--passphrase-file", str(passfile))
    assert r.returncode == 0, r.stdout + r.stderr
    assert actions not in r.stdout, r.stdout

    # The Actions secret and variable: deleted / changed by hand, restored.
    base = "/api/v1/repos/olsitec/foundation/actions"

    def forge(method, path, body=None):
        return http_json(method, "127.0.0.1", forge_port, base + path, "platform-admin", pw, body)

    def secret_names():
        code, listed = forge("GET", "/secrets")
        assert code == 200, listed
        return [s["name"] for s in listed]

    assert secret_names() == ["CI_S3_KEY"]
    assert forge("GET", "/variables/CI_BUCKET")[1]["data"] == "artifacts"
    assert forge("DELETE", "/secrets/CI_S3_KEY")[0] == 204
    assert forge("PUT", "/variables/CI_BUCKET", {"name": "CI_BUCKET", "value": "elsewhere"})[0] in (201, 204)
    assert secret_names() == []
    r = project.run("apply", "--once", "--spec", spec, "--state-dir", state, "--passphrase-file", str(passfile))
    assert r.returncode == 0, r.stdout + r.stderr
    assert actions + "secret CI_S3_KEY restored (it had been deleted), variable CI_BUCKET set back to the spec's" \
        in r.stdout, r.stdout
    assert secret_names() == ["CI_S3_KEY"]
    assert forge("GET", "/variables/CI_BUCKET")[1]["data"] == "artifacts"
    # A rotation writes the new value (the forge cannot show it: the step
    # says it wrote; tests/integration/forgejo_test.cpp checks the value sent).
    key = project.run("secret", "show", "ci-s3.key", "--state-dir", state,
                      "--passphrase-file", str(passfile)).stdout.strip()
    r = project.run("rotate", "ci-s3", "--spec", spec, "--state-dir", state, "--passphrase-file", str(passfile))
    assert r.returncode == 0, r.stdout + r.stderr
    assert actions + "secret CI_S3_KEY updated" in r.stdout, r.stdout
    new_key = project.run("secret", "show", "ci-s3.key", "--state-dir", state,
                          "--passphrase-file", str(passfile)).stdout.strip()
    assert len(new_key) == 40 and new_key != key
    assert key not in r.stdout + r.stderr and new_key not in r.stdout + r.stderr
    assert secret_names() == ["CI_S3_KEY"]

    # 2. The daemon tracks the repository on the forge.
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

    proc = None
    try:
        # The operator's clone; the first commit is the day-zero spec itself.
        work = tmp_path / "work"
        work.mkdir()
        header = "Authorization: Basic " + base64.b64encode(f"platform-admin:{pw}".encode()).decode()
        genv = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
                    GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org",
                    GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", GIT_CONFIG_COUNT="1",
                    GIT_CONFIG_KEY_0="http.extraHeader", GIT_CONFIG_VALUE_0=header)

        def git(*args):
            g = subprocess.run(["git", *args], cwd=str(work), capture_output=True, text=True, env=genv,
                               timeout=120)
            assert g.returncode == 0, f"git {args}: {g.stdout}{g.stderr}"
            return g.stdout.strip()

        git("init", "-q", "-b", "main")
        (work / "VERSIONS").write_text((tmp_path / "VERSIONS").read_text())
        remote = f"http://127.0.0.1:{forge_port}/olsitec/foundation.git"
        (work / "foundation.toml").write_text(text)
        git("add", "-A")
        git("commit", "-q", "-m", "day zero")
        first = git("rev-parse", "HEAD")
        git("push", "-q", remote, "HEAD:refs/heads/main")

        proc = subprocess.Popen([project.bin, "serve", "--config", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, env=env)
        wait_for(lambda: http_json("GET", "127.0.0.1", fd_port, "/healthz")[0] == 200, "the daemon's API",
             output=output)

        def applied_is(commit):
            code, st = http_json("GET", "127.0.0.1", fd_port, "/v1/status")
            return code == 200 and st.get("spec", {}).get("applied_revision") == commit

        wait_for(lambda: applied_is(first), "the day-zero commit applied (first fetch)", output=output)

        # The push: one new container. Polling and resync are an hour away,
        # so only the forge's webhook can bring it in.
        (work / "foundation.toml").write_text(
            text + f'\n[containers."{project.name}-web"]\nimage = "${{versions.busybox}}"\n'
            'command = ["sleep", "3600"]\n')
        git("add", "-A")
        git("commit", "-q", "-m", "add web")
        commit = git("rev-parse", "HEAD")
        git("push", "-q", remote, "HEAD:refs/heads/main")

        def applied():
            return applied_is(commit)

        wait_for(applied, "the pushed commit applied (delivered by the forge's webhook)", output=output)
        wait_for(lambda: (project.container("web") or {}).get("State", {}).get("Running") is True,
             "the pushed container running", output=output)
        # It came by the forge's signed delivery, verified and accepted.
        code, metrics = http_json("GET", "127.0.0.1", fd_port, "/metrics")
        assert code == 200
        accepted = [line for line in metrics.splitlines()
                    if line.startswith('foundationd_webhook_deliveries_total{result="accepted"}')]
        assert accepted and float(accepted[0].split()[-1]) >= 1, metrics
        assert pw not in output()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
