"""End-to-end: what foundationd cannot make by itself, against the real Docker
engine, OpenBao and the forge (Gitea, tests/peers/forgejo-image), with the
built foundationd as a black box:

1. an operator-provided value (`{ provided = true }`): before `secret set`
   its consumer is blocked, with a message naming the command, in `plan`,
   `apply --once` (exit 1) and the daemon's status, while everything else
   converges; `secret set` through the running daemon (stdin) converges it;
   set again offline it is a rotation: Vault gets the new version and the
   consumer is recreated with it. The value is in no output, log, label or
   the state file in plain text;
2. the runner's registration token (`${forgejo.runner_token}`): a runner
   stand-in is created only after the forge step produced the token (in the
   same `apply`), sees the live token in its env and a secret file, and
   follows when the forge issues a new one (the forge's seed token, from
   GITEA_RUNNER_REGISTRATION_TOKEN, rotated)."""
import http.client
import json
import os
import subprocess
import time

from conftest import docker, free_port, peer_image, wait_for
from vault_keys import open_export

PASS = "provided e2e passphrase, long enough"

SPEC = """
[credentials.smtp]
vault_path = "mail/smtp"
[credentials.smtp.fields]
user = "mailer"
password = { provided = true }
[credentials.runner-seed.fields]
token = { generate = "hex", bytes = 20 }

[volumes.P-bao-data]
[containers.P-bao]
image = "${versions.openbao}"
volumes = ["P-bao-data:/openbao/data"]
ports = ["127.0.0.1:BAO_PORT:8200"]
stop_timeout = "2s"

[vault]
container = "P-bao"
address = "http://127.0.0.1:BAO_PORT"
key_shares = 1
key_threshold = 1
kv_mount = "foundation"

[containers.P-mailer]
image = "${versions.busybox}"
command = ["sleep", "3600"]
env = { SMTP_PASSWORD = "${credentials.smtp.password}" }
secret_files = { "/run/secrets/smtp" = "${credentials.smtp.password}" }
stop_timeout = "1s"

[containers.P-other]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"

[containers.P-forge]
image = "${versions.forge}"
ports = ["127.0.0.1:FORGE_PORT:3000"]
env = { GITEA_RUNNER_REGISTRATION_TOKEN = "${credentials.runner-seed.token}" }
stop_timeout = "2s"
[containers.P-forge.healthcheck]
test = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/api/healthz"]
interval = "1s"
retries = 120

[forgejo]
container = "P-forge"
url = "http://127.0.0.1:FORGE_PORT"
[forgejo.runner_token]
vault_path = "forgejo/runner-registration"

[containers.P-runner]
image = "${versions.busybox}"
command = ["sleep", "3600"]
env = { RUNNER_TOKEN = "${forgejo.runner_token}" }
secret_files = { "/run/secrets/runner-token" = "${forgejo.runner_token}" }
stop_timeout = "1s"
"""


def test_provided_secret_and_runner_token(project, tmp_path):
    images = {
        "busybox": project.image,
        "openbao": peer_image("FOUNDATIOND_OPENBAO_IMAGE", "tests/peers/openbao-image"),
        "forge": peer_image("FOUNDATIOND_FORGEJO_IMAGE", "tests/peers/forgejo-image"),
    }
    (tmp_path / "VERSIONS").write_text("[images]\n" + "".join(f'{k} = "{v}"\n' for k, v in images.items()))
    bao_port, forge_port, api_port = free_port(), free_port(), free_port()
    spec = tmp_path / "foundation.toml"
    spec.write_text(f'spec_version = 1\nproject = "{project.name}"\nversions = "VERSIONS"\n' +
                    SPEC.replace("P-", project.name + "-").replace("BAO_PORT", str(bao_port))
                    .replace("FORGE_PORT", str(forge_port)))
    state = str(tmp_path / "state")
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    config = tmp_path / "foundationd.toml"
    config.write_text(
        f'state_dir = "{state}"\n'
        f'[api]\nlisten = ["unix:{tmp_path}/api.sock", "tcp:127.0.0.1:{api_port}"]\n'
        f'token_file = "{tmp_path}/api-token"\n'
        f'[source]\nkind = "file"\npath = "{spec}"\n'
        '[reconcile]\nresync_interval = "1h"\n[unlock]\nkdf = "interactive"\n')
    name = project.name
    outputs = []

    def fd(*args, stdin=None):
        r = project.run(*args, stdin=stdin)
        outputs.append(r.stdout + r.stderr)
        return r

    offline = ("--spec", str(spec), "--state-dir", state, "--passphrase-file", str(passfile))

    def env_of(short, var):
        r = docker("exec", f"{name}-{short}", "sh", "-c", f'printf %s "${var}"', check=False)
        return r.stdout if r.returncode == 0 else None

    def file_of(short, path):
        return docker("exec", f"{name}-{short}", "cat", path).stdout

    def live_token():
        r = docker("exec", "-u", "git", f"{name}-forge", "forgejo", "actions", "generate-runner-token")
        return r.stdout.strip().splitlines()[-1]

    def secret(ref):  # prints the value by design: not part of `outputs`
        r = project.run("secret", "show", ref, "--state-dir", state, "--passphrase-file", str(passfile))
        assert r.returncode == 0, r.stderr
        return r.stdout.rstrip("\n")

    def kv(path):
        keys = tmp_path / "vault-keys.json"
        r = fd("export-vault-keys", str(keys), "--state-dir", state)
        assert r.returncode == 0, r.stdout + r.stderr
        root = open_export(keys, PASS)["root_token"]
        conn = http.client.HTTPConnection("127.0.0.1", bao_port, timeout=15)
        conn.request("GET", f"/v1/foundation/data/{path}", headers={"X-Vault-Token": root})
        resp = conn.getresponse()
        body = json.loads(resp.read().decode() or "null")
        conn.close()
        assert resp.status == 200, body
        return body["data"]["data"], body["data"]["metadata"]["version"]

    proc = None
    log = open(tmp_path / "daemon.log", "w+")

    def daemon_output():
        log.flush()
        log.seek(0)
        return log.read()

    try:
        r = fd("init", "--state-dir", state, "--passphrase-file", str(passfile), "--kdf", "interactive")
        assert r.returncode == 0, r.stderr

        # 1. Day zero: the consumer of the unset value is blocked (exit 1), the
        # rest converges; the runner is created after the forge step, in this run.
        r = fd("plan", "--spec", str(spec), "--state-dir", state)
        assert "credential.smtp.password: blocked" in r.stdout, r.stdout
        assert "run `foundationd secret set smtp.password`" in r.stdout, r.stdout
        r = fd("apply", "--once", *offline)
        out = r.stdout + r.stderr
        assert r.returncode == 1, out
        assert (f"container.{name}-mailer: BLOCKED: needs credential smtp.password, which is "
                "provided and not set yet; run `foundationd secret set smtp.password`") in out, out
        assert "vault.kv/mail/smtp: BLOCKED: needs credential smtp.password" in out, out
        assert "Not converged: 0 failed, 2 blocked" in out, out
        assert project.container("mailer") is None
        assert project.container("other")["State"]["Running"] is True
        assert project.container("runner")["State"]["Running"] is True
        produced = out.index("forgejo.runner-token: stored in Vault at forgejo/runner-registration")
        assert out.index(f"container.{name}-runner: create") > produced, out
        token = live_token()
        assert token == secret("runner-seed.token")  # the forge's seed, from its env
        assert env_of("runner", "RUNNER_TOKEN") == token
        assert file_of("runner", "/run/secrets/runner-token") == token
        assert token not in out

        # 2. The daemon reports the consumer blocked, naming the command.
        creds = tmp_path / "creds"
        creds.mkdir()
        (creds / "passphrase").write_text(PASS + "\n")
        env = dict(os.environ, CREDENTIALS_DIRECTORY=str(creds))
        env.pop("NOTIFY_SOCKET", None)
        proc = subprocess.Popen([project.bin, "serve", "--config", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, env=env)

        def status():
            conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=15)
            conn.request("GET", "/v1/status")
            body = json.loads(conn.getresponse().read().decode())
            conn.close()
            return body

        def mailer_status():
            for res in status().get("resources", []):
                if res["kind"] == "container" and res["name"] == f"{name}-mailer":
                    return res
            return None

        wait_for(lambda: not status()["locked"] and
                 (status().get("last_reconcile") or {}).get("result") == "blocked",
                 "the daemon unsealed, its reconcile blocked", output=daemon_output)
        m = mailer_status()
        assert m["status"] == "blocked", m
        assert "foundationd secret set smtp.password" in m["reason"], m
        assert (f"event=resource.blocked resource=container.{name}-mailer message=\"needs "
                "credential smtp.password") in daemon_output()

        # 3. `secret set` through the running daemon, the value on stdin.
        v1 = "first-provided-" + os.urandom(8).hex()
        r = fd("secret", "set", "smtp.password", "--config", str(config), stdin=v1 + "\n")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "credential.smtp.password: set (version 1)" in r.stdout, r.stdout
        assert env_of("mailer", "SMTP_PASSWORD") == v1
        assert file_of("mailer", "/run/secrets/smtp") == v1
        assert mailer_status()["status"] == "converged"
        assert status()["last_reconcile"]["result"] == "converged"
        proc.terminate()
        proc.wait(timeout=30)
        proc = None
        assert kv("mail/smtp")[0] == {"user": "mailer", "password": v1}

        # 4. Set again, one-shot (no daemon): a rotation; Vault, then the consumer.
        before = project.container("mailer")["Id"]
        v2 = "second-provided-" + os.urandom(8).hex()
        r = fd("secret", "set", "smtp.password", "--config", str(config), "--passphrase-file",
               str(passfile), stdin=v2)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "credential.smtp.password: set (version 2)" in r.stdout, r.stdout
        assert project.container("mailer")["Id"] != before
        assert env_of("mailer", "SMTP_PASSWORD") == v2
        assert file_of("mailer", "/run/secrets/smtp") == v2
        data, version = kv("mail/smtp")
        assert data == {"user": "mailer", "password": v2} and version >= 2, (data, version)
        # Refused: not a provided field; the value never on the command line.
        r = fd("secret", "set", "runner-seed.token", "--config", str(config), "--passphrase-file",
               str(passfile), stdin="x")
        assert r.returncode == 1 and "is not { provided = true }" in r.stderr, r.stderr

        # 5. The forge issues a new registration token: the runner follows.
        r = fd("rotate", "runner-seed", *offline)
        assert r.returncode == 0, r.stdout + r.stderr
        new_token = live_token()
        assert new_token != token and new_token == secret("runner-seed.token")
        assert env_of("runner", "RUNNER_TOKEN") == new_token
        assert file_of("runner", "/run/secrets/runner-token") == new_token
        assert kv("forgejo/runner-registration")[0] == {"token": new_token}

        # No value in plain text: outputs, the daemon's log, labels, the state file.
        text = "".join(outputs) + daemon_output()
        for value in (v1, v2):
            assert value not in text
            assert value not in json.dumps(project.container("mailer")["Config"]["Labels"])
            with open(os.path.join(state, "state.db"), "rb") as f:
                assert value.encode() not in f.read()
        for value in (token, new_token):
            assert value not in text
            assert value not in json.dumps(project.container("runner")["Config"]["Labels"])
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        for short in ("mailer", "runner"):
            subprocess.run(["rm", "-rf", f"/run/foundationd/secrets/{name}-{short}"])
