"""End-to-end: the foundation stack of CONTEXT.md in one spec, against the real
peers (OpenBao, SeaweedFS, Debian's PostgreSQL, the forge, the real Docker
engine) and the built foundationd as a black box:

1. day zero (`apply --once`): Vault initialised and unsealed, credentials
   mirrored to its KV, a versioned bucket with an expiry rule, a PostgreSQL
   role and database, a consumer container that really logs in, the forge's
   admin/org/repo and its runner registration token stored in Vault;
2. a second apply changes nothing (and prints each controller's time);
3. `rotate` of the database credential: ALTER ROLE, then Vault, then the
   consumer recreated — which logs in with the new password (the old one is
   refused);
4. drift, repaired by the next apply: the bucket's versioning suspended, the
   role's password changed by hand, the runner token and the credential
   deleted from Vault;
5. the daemon (`serve`, unattended unseal) converges the same stack without a
   change, and repairs drift again on a POST /v1/reconcile.

What Vault holds is read with the root token from `export-vault-keys`,
opened by tests/e2e/vault_keys.py (libsodium through ctypes, not our code);
what S3 holds with curl's own SigV4 signing; PostgreSQL with psql."""
import http.client
import json
import os
import re
import subprocess

import pytest

from conftest import docker, free_port, peer_image, s3_request, wait_for
from vault_keys import open_export

PASS = "foundation stack passphrase, long enough"


SPEC = """
[credentials.s3-root]
[credentials.s3-root.fields]
accessKey = { generate = "hex", bytes = 10 }
secretKey = { generate = "password", length = 40 }
[credentials.pg-super]
[credentials.pg-super.fields]
password = { generate = "password", length = 24 }
[credentials.app-db]
vault_path = "app/db"
[credentials.app-db.fields]
username = "app"
password = { generate = "password", length = 32 }
[credentials.forge-admin]
[credentials.forge-admin.fields]
password = { generate = "password", length = 24 }

[networks.P-net]
[volumes.P-bao-data]
[volumes.P-pgdata]

[containers.P-bao]
image = "${versions.openbao}"
volumes = ["P-bao-data:/openbao/data"]
ports = ["127.0.0.1:BAO_PORT:8200"]
stop_timeout = "2s"

[vault]
container = "P-bao"
address = "http://127.0.0.1:BAO_PORT"
key_shares = 3
key_threshold = 2
kv_mount = "foundation"

[vault.policies.app]
rules = '''
path "foundation/data/app/*" { capabilities = ["read"] }
'''

[containers.P-s3]
image = "${versions.seaweedfs}"
env = { AWS_ACCESS_KEY_ID = "${credentials.s3-root.accessKey}", AWS_SECRET_ACCESS_KEY = "${credentials.s3-root.secretKey}" }
ports = ["127.0.0.1:S3_PORT:9000"]
stop_timeout = "1s"

[s3.main]
container = "P-s3"
endpoint = "http://127.0.0.1:S3_PORT"
region = "us-east-1"
access_key = "${credentials.s3-root.accessKey}"
secret_key = "${credentials.s3-root.secretKey}"

[buckets.P-backups]
s3 = "main"
versioning = true
expire_days = 7

[containers.P-pg]
image = "${versions.postgres}"
networks = ["P-net"]
volumes = ["P-pgdata:/var/lib/postgresql/data"]
env = { POSTGRES_PASSWORD_FILE = "/run/secrets/pg-super" }
secret_files = { "/run/secrets/pg-super" = "${credentials.pg-super.password}" }
healthcheck = { test = ["CMD-SHELL", "pg_isready -U postgres -q"], interval = "1s", timeout = "3s", retries = 120 }
stop_timeout = "10s"

[postgres.main]
container = "P-pg"
superuser = "postgres"
[postgres.main.roles.app]
password = "${credentials.app-db.password}"
[postgres.main.databases.appdb]
owner = "app"

# The consumer: logs in every half second with the password in its secret
# file and records the last success.
[containers.P-app]
image = "${versions.postgres}"
entrypoint = ["/bin/sh", "-c"]
command = ["while :; do if PGPASSWORD=\\"$$(cat /run/secrets/db-password)\\" psql -X -q -At -h P-pg -U app -d appdb -c 'SELECT 1' >/dev/null 2>/tmp/login.err; then date +%s.%N >/tmp/last-login; fi; sleep 0.5; done"]
networks = ["P-net"]
secret_files = { "/run/secrets/db-password" = "${credentials.app-db.password}" }
depends_on = { "P-pg" = "healthy" }
stop_timeout = "1s"

[containers.P-forge]
image = "${versions.forge}"
ports = ["127.0.0.1:FORGE_PORT:3000"]
stop_timeout = "2s"
[containers.P-forge.healthcheck]
test = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/api/healthz"]
interval = "1s"
retries = 120

[forgejo]
container = "P-forge"
url = "http://127.0.0.1:FORGE_PORT"
[forgejo.admin]
username = "platform-admin"
email = "platform@example.org"
password = "${credentials.forge-admin.password}"
[forgejo.orgs.olsitec]
[forgejo.repos."olsitec/foundation"]
[forgejo.runner_token]
vault_path = "forgejo/runner-registration"
"""


class Stack:
    def __init__(self, project, tmp_path):
        self.p = project
        self.tmp = tmp_path
        images = {
            "openbao": peer_image("FOUNDATIOND_OPENBAO_IMAGE", "tests/peers/openbao-image"),
            "seaweedfs": peer_image("FOUNDATIOND_S3_IMAGE", "tests/peers/seaweedfs-image"),
            "postgres": peer_image("FOUNDATIOND_POSTGRES_IMAGE", "tests/peers/postgres-image"),
            "forge": peer_image("FOUNDATIOND_FORGEJO_IMAGE", "tests/peers/forgejo-image"),
        }
        (tmp_path / "VERSIONS").write_text(
            "[images]\n" + "".join(f'{k} = "{v}"\n' for k, v in images.items()))
        self.bao_port, self.s3_port, self.forge_port = free_port(), free_port(), free_port()
        text = (SPEC.replace("P-", project.name + "-")
                .replace("BAO_PORT", str(self.bao_port))
                .replace("S3_PORT", str(self.s3_port))
                .replace("FORGE_PORT", str(self.forge_port)))
        self.spec = str(tmp_path / "foundation.toml")
        with open(self.spec, "w") as f:
            f.write(f'spec_version = 1\nproject = "{project.name}"\nversions = "VERSIONS"\n' + text)
        self.state = str(tmp_path / "state")
        self.passfile = str(tmp_path / "pass")
        with open(self.passfile, "w") as f:
            f.write(PASS + "\n")
        self.pg = f"{project.name}-pg"
        self.app = f"{project.name}-app"
        self.forge = f"{project.name}-forge"
        self.bucket = f"{project.name}-backups"
        self._root = None
        self._s3keys = None

    # --- foundationd -------------------------------------------------------------
    def fd(self, *args):
        r = self.p.run(*args, "--spec", self.spec, "--state-dir", self.state,
                       "--passphrase-file", self.passfile)
        return r

    def init(self):
        r = self.p.run("init", "--state-dir", self.state, "--passphrase-file", self.passfile,
                       "--kdf", "interactive")
        assert r.returncode == 0, r.stderr

    def apply(self):
        r = self.fd("apply", "--once")
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    def secret(self, ref):
        r = self.fd("secret", "show", ref)
        assert r.returncode == 0, r.stderr
        return r.stdout.rstrip("\n")

    # --- Vault, as the operator's break-glass root token sees it -----------------
    def root_token(self):
        if self._root is None:
            path = self.tmp / "vault-keys.json"
            r = self.fd("export-vault-keys", str(path))
            assert r.returncode == 0, r.stdout + r.stderr
            self._root = open_export(path, PASS)["root_token"]
        return self._root

    def vault(self, method, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.bao_port, timeout=15)
        conn.request(method, "/v1/" + path, headers={"X-Vault-Token": self.root_token()})
        r = conn.getresponse()
        body = r.read().decode()
        conn.close()
        return r.status, (json.loads(body) if body.strip() else None)

    def kv(self, path):
        """The current version's data at `path` of the KV mount, or None."""
        code, body = self.vault("GET", f"foundation/data/{path}")
        if code == 404:
            return None
        assert code == 200, body
        return body["data"]["data"], body["data"]["metadata"]["version"]

    # --- S3, signed by curl -----------------------------------------------------------
    def s3(self, method, sub, body=""):
        if self._s3keys is None:
            self._s3keys = (self.secret("s3-root.accessKey"), self.secret("s3-root.secretKey"))
        return s3_request(self.tmp, self.s3_port, self._s3keys, method, self.bucket, sub, body)

    def versioning(self):
        code, text = self.s3("GET", "versioning")
        assert code == 200, text
        m = re.search(r"<Status>(\w+)</Status>", text)
        return m.group(1) if m else "off"

    def suspend_versioning(self):
        body = ('<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                "<Status>Suspended</Status></VersioningConfiguration>")
        code, text = self.s3("PUT", "versioning", body)
        assert code == 200, text

    # --- PostgreSQL ----------------------------------------------------------------
    def login(self, password=None):
        """A real login from the consumer container over the spec's network."""
        pw = "$(cat /run/secrets/db-password)" if password is None else f"'{password}'"
        script = (f"PGPASSWORD={pw} psql -X -At -h {self.pg} -U app -d appdb "
                  f"-c 'SELECT current_user, current_database()'")
        r = docker("exec", self.app, "sh", "-c", script, check=False)
        return r.returncode == 0 and r.stdout.strip() == "app|appdb"

    def sql(self, statement):
        r = subprocess.run(["docker", "exec", "-i", "-u", "postgres", self.pg, "psql", "-X", "-q",
                            "-At", "-v", "ON_ERROR_STOP=1", "-d", "postgres"],
                           capture_output=True, text=True, input=statement)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def consumer_logged_in_after(self, after):
        r = docker("exec", self.app, "cat", "/tmp/last-login", check=False)
        return r.returncode == 0 and r.stdout.strip() and float(r.stdout) > after

    def container_now(self):
        return float(docker("exec", self.app, "date", "+%s.%N").stdout)

    # --- the forge -------------------------------------------------------------------
    def live_runner_token(self):
        """The forge's current registration token (it answers the live one)."""
        r = docker("exec", "-u", "git", self.forge, "forgejo", "actions", "generate-runner-token")
        return r.stdout.strip().splitlines()[-1]

    def cleanup(self):
        for short in ("pg", "app"):
            subprocess.run(["rm", "-rf", f"/run/foundationd/secrets/{self.p.name}-{short}"])


@pytest.fixture
def stack(project, tmp_path):
    s = Stack(project, tmp_path)
    yield s
    s.cleanup()


def timings(out):
    m = re.search(r"^Time per step: (.*)\.$", out, re.M)
    assert m, out
    return {name: int(ms) for name, ms in re.findall(r"(\w+) (\d+) ms", m.group(1))}


def test_foundation_stack_rotation_and_drift(stack, tmp_path):
    stack.init()

    # 1. Day zero.
    out = stack.apply()
    for line in ("vault.kv/app/db: written to Vault (version 1)",
                 f"bucket.{stack.bucket}: created",
                 "postgres.main/role/app: created with LOGIN and its password",
                 "postgres.main/database/appdb: created, owned by app",
                 "forgejo.admin/platform-admin: created",
                 "forgejo.runner-token: stored in Vault at forgejo/runner-registration"):
        assert line in out, out
    password = stack.secret("app-db.password")
    data, version = stack.kv("app/db")
    assert data == {"username": "app", "password": password} and version == 1
    token = stack.live_runner_token()
    assert stack.kv("forgejo/runner-registration")[0] == {"token": token}
    assert stack.versioning() == "Enabled"
    code, text = stack.s3("GET", "lifecycle")
    assert code == 200 and "<Days>7</Days>" in text, text
    assert stack.login()
    wait_for(lambda: stack.consumer_logged_in_after(0), "the consumer's own login")

    # 2. A second apply changes nothing; each controller's time is printed.
    again = stack.apply()
    assert "already matches the spec, nothing to change" in again, again
    steps = timings(again)
    assert set(steps) == {"credentials", "docker", "vault", "buckets", "postgres", "forgejo"}, again
    print("no-op apply, per step (ms):", steps)

    # 3. Rotation: ALTER ROLE, then Vault, then the consumer recreated.
    app_before = stack.p.container("app")["Id"]
    rot = stack.fd("rotate", "app-db")
    assert rot.returncode == 0, rot.stdout + rot.stderr
    new = stack.secret("app-db.password")
    assert new != password
    role = rot.stdout.index("postgres.main/role/app: set the rotated password")
    recreate = rot.stdout.index(f"container.{stack.app}: recreate")
    assert role < recreate, rot.stdout
    data, version = stack.kv("app/db")
    assert data["password"] == new and version == 2
    assert stack.p.container("app")["Id"] != app_before
    assert stack.login()
    assert not stack.login(password=password), "the old password still logs in"
    wait_for(lambda: stack.consumer_logged_in_after(stack.container_now() - 0.1),
             "the recreated consumer's own login")

    # 4. Drift, all at once; one apply repairs it.
    stack.suspend_versioning()
    assert stack.versioning() == "Suspended"
    stack.sql("ALTER ROLE app PASSWORD 'changed-by-hand'")
    assert not stack.login()
    assert stack.vault("DELETE", "foundation/metadata/forgejo/runner-registration")[0] == 204
    assert stack.vault("DELETE", "foundation/data/app/db")[0] == 204
    assert stack.kv("forgejo/runner-registration") is None
    fix = stack.apply()
    for line in (f"bucket.{stack.bucket}: versioning",
                 "postgres.main/role/app: password restored",
                 "forgejo.runner-token: written again to Vault at forgejo/runner-registration",
                 "vault.kv/app/db: restored in Vault"):
        assert line in fix, fix
    assert stack.versioning() == "Enabled"
    assert stack.login()
    assert stack.kv("forgejo/runner-registration")[0] == {"token": token}
    assert stack.kv("app/db")[0]["password"] == new
    assert stack.sql("SELECT count(*) FROM pg_database WHERE datname = 'appdb'") == "1\n"

    # No secret in anything foundationd printed.
    everything = out + again + rot.stdout + rot.stderr + fix
    for s in (password, new, token, stack.root_token(), stack.secret("s3-root.secretKey"),
              stack.secret("forge-admin.password")):
        assert s not in everything

    # 5. The daemon: unattended unseal, the same stack converges without a
    # change, and drift is repaired on a reconcile request.
    port = free_port()
    token_file = tmp_path / "api-token"
    config = tmp_path / "foundationd.toml"
    config.write_text(
        f'state_dir = "{stack.state}"\n'
        f'[api]\nlisten = ["tcp:127.0.0.1:{port}"]\ntoken_file = "{token_file}"\n'
        f'[source]\nkind = "file"\npath = "{stack.spec}"\n'
        f'[reconcile]\nresync_interval = "1h"\n[unlock]\nkdf = "interactive"\n')
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "passphrase").write_text(PASS + "\n")
    env = dict(os.environ, CREDENTIALS_DIRECTORY=str(creds), NO_COLOR="1")
    env.pop("NOTIFY_SOCKET", None)
    log = open(tmp_path / "daemon.log", "w+")

    def output():
        log.flush()
        log.seek(0)
        return log.read()

    def request(method, path, auth=False):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"} if auth else {}
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        body = r.read().decode()
        conn.close()
        return r.status, body

    def resources():
        code, body = request("GET", "/v1/status")
        assert code == 200, body
        return {f'{r["kind"]}/{r["name"]}': r["status"] for r in json.loads(body)["resources"]}

    def all_converged():
        rs = resources()
        return ("forgejo/runner-token" in rs and "postgres/main/role/app" in rs
                and all(s == "converged" for s in rs.values()))

    proc = subprocess.Popen([stack.p.bin, "serve", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(all_converged, "the daemon to converge the stack", 240, output)
        app_id = stack.p.container("app")["Id"]
        stack.suspend_versioning()
        assert stack.vault("DELETE", "foundation/metadata/forgejo/runner-registration")[0] == 204
        code, body = request("POST", "/v1/reconcile", auth=True)
        assert code in (200, 202), body
        wait_for(lambda: stack.versioning() == "Enabled"
                 and stack.kv("forgejo/runner-registration") is not None,
                 "the daemon to repair the drift", 120, output)
        assert stack.kv("forgejo/runner-registration")[0] == {"token": token}
        wait_for(all_converged, "converged again", 60, output)
        assert stack.p.container("app")["Id"] == app_id  # nothing else was touched
        assert stack.login()
        text = output()
        for s in (new, token, stack.root_token()):
            assert s not in text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
