"""End-to-end: the converge follows the dependency graph, not a fixed order
by kind. With the built foundationd as a black box against the real Docker
engine, PostgreSQL, SeaweedFS (S3), OpenBao and the forge (Gitea):

1. from empty, ONE `apply --once` converges a consumer that uses a new
   PostgreSQL role's password, an S3 server's keys (its buckets) and the
   forge's runner token: the consumer is created only after the role, the
   bucket and the token exist, and one that uses the role and the bucket
   only after those but before the forge step (asserted from the order of
   the output lines, not from timing);
2. a failing step (a [postgres.*] instance whose host has no psql, so its
   role cannot be created) blocks exactly its dependents (the consumer of
   that role and what depends on it), reported blocked naming what failed;
   everything else converges, including the consumer of a good role;
   `apply --once --json` says the same as one JSON document."""
import json

from conftest import docker, free_port, peer_image

PASS = "pipeline e2e passphrase, long enough"

SPEC = """
[credentials.pg-super.fields]
password = { generate = "password", length = 24 }
[credentials.app-db.fields]
password = { generate = "password", length = 32 }
[credentials.s3-root.fields]
accessKey = { generate = "hex", bytes = 10 }
secretKey = { generate = "password", length = 40 }
[credentials.runner-seed.fields]
token = { generate = "hex", bytes = 20 }

[containers.@pg]
image = "${versions.postgres}"
env = { POSTGRES_PASSWORD_FILE = "/run/secrets/pg-super" }
secret_files = { "/run/secrets/pg-super" = "${credentials.pg-super.password}" }
healthcheck = { test = ["CMD-SHELL", "pg_isready -U postgres -q"], interval = "1s", timeout = "3s", retries = 120 }
stop_timeout = "2s"

[postgres.main]
container = "@pg"
superuser = "postgres"
[postgres.main.roles.app]
password = "${credentials.app-db.password}"
"""

FULL = SPEC + """
[containers.@s3]
image = "${versions.seaweedfs}"
env = { AWS_ACCESS_KEY_ID = "${credentials.s3-root.accessKey}", AWS_SECRET_ACCESS_KEY = "${credentials.s3-root.secretKey}" }
ports = ["127.0.0.1:S3_PORT:9000"]
stop_timeout = "1s"
[s3.main]
container = "@s3"
endpoint = "http://127.0.0.1:S3_PORT"
access_key = "${credentials.s3-root.accessKey}"
secret_key = "${credentials.s3-root.secretKey}"
[buckets.@data]
s3 = "main"

[volumes.@bao-data]
[containers.@bao]
image = "${versions.openbao}"
volumes = ["@bao-data:/openbao/data"]
ports = ["127.0.0.1:BAO_PORT:8200"]
stop_timeout = "2s"
[vault]
container = "@bao"
address = "http://127.0.0.1:BAO_PORT"
key_shares = 1
key_threshold = 1
kv_mount = "foundation"

[containers.@forge]
image = "${versions.forge}"
ports = ["127.0.0.1:FORGE_PORT:3000"]
env = { GITEA_RUNNER_REGISTRATION_TOKEN = "${credentials.runner-seed.token}" }
stop_timeout = "2s"
[containers.@forge.healthcheck]
test = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/api/healthz"]
interval = "1s"
retries = 120
[forgejo]
container = "@forge"
url = "http://127.0.0.1:FORGE_PORT"
[forgejo.runner_token]
vault_path = "forgejo/runner-registration"

[containers.@consumer]
image = "${versions.busybox}"
command = ["sleep", "3600"]
env = { DB_PASSWORD = "${credentials.app-db.password}", S3_SECRET = "${credentials.s3-root.secretKey}", RUNNER_TOKEN = "${forgejo.runner_token}" }
stop_timeout = "1s"

[containers.@db-consumer]
image = "${versions.busybox}"
command = ["sleep", "3600"]
env = { DB_PASSWORD = "${credentials.app-db.password}", S3_SECRET = "${credentials.s3-root.secretKey}" }
stop_timeout = "1s"
"""

BROKEN = SPEC + """
[credentials.other-db.fields]
password = { generate = "password", length = 32 }

[containers.@fake-pg]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
[postgres.broken]
container = "@fake-pg"
superuser = "postgres"
[postgres.broken.roles.other]
password = "${credentials.other-db.password}"

[containers.@app]
image = "${versions.busybox}"
command = ["sleep", "3600"]
env = { DB_PASSWORD = "${credentials.app-db.password}" }
stop_timeout = "1s"
[containers.@bad]
image = "${versions.busybox}"
command = ["sleep", "3600"]
env = { DB_PASSWORD = "${credentials.other-db.password}" }
stop_timeout = "1s"
[containers.@bad-sidecar]
image = "${versions.busybox}"
command = ["sleep", "3600"]
depends_on = ["@bad"]
stop_timeout = "1s"
[containers.@plain]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
"""


def start_stack(project, tmp_path, body):
    images = {
        "busybox": project.image,
        "postgres": peer_image("FOUNDATIOND_POSTGRES_IMAGE", "tests/peers/postgres-image"),
    }
    if "seaweedfs" in body:
        images["seaweedfs"] = peer_image("FOUNDATIOND_S3_IMAGE", "tests/peers/seaweedfs-image")
        images["openbao"] = peer_image("FOUNDATIOND_OPENBAO_IMAGE", "tests/peers/openbao-image")
        images["forge"] = peer_image("FOUNDATIOND_FORGEJO_IMAGE", "tests/peers/forgejo-image")
    (tmp_path / "VERSIONS").write_text("[images]\n" + "".join(f'{k} = "{v}"\n' for k, v in images.items()))
    spec = project.write(body.replace("S3_PORT", str(free_port())).replace("BAO_PORT", str(free_port()))
                         .replace("FORGE_PORT", str(free_port())))
    state = str(tmp_path / "state")
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile), "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    return ("--spec", spec, "--state-dir", state, "--passphrase-file", str(passfile))


def env_of(project, short, var):
    r = docker("exec", f"{project.name}-{short}", "sh", "-c", f'printf %s "${var}"', check=False)
    return r.stdout if r.returncode == 0 else None


def test_one_apply_creates_each_consumer_after_what_it_uses(project, tmp_path):
    offline = start_stack(project, tmp_path, FULL)
    r = project.run("apply", "--once", *offline)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    name = project.name
    lines = out.splitlines()

    def first(prefix):
        for i, line in enumerate(lines):
            if line.startswith(prefix):
                return i
        raise AssertionError(f"no line starting with {prefix!r} in:\n{out}")

    consumer = first(f"container.{name}-consumer: create")
    role = first("postgres.main/role/app: created")
    bucket = first(f"bucket.{name}-data: created")
    token = first("forgejo.runner-token: stored in Vault")
    # Each thing the consumer uses exists before it is created ...
    assert role < consumer and bucket < consumer and token < consumer, out
    # One that uses the role and the bucket but not the token: after them.
    # (It does not wait for the forge step, but the steps run at once, so
    # the forge's may well finish first: config/phases.hpp's unit tests show
    # it is not held back.)
    db_consumer = first(f"container.{name}-db-consumer: create")
    assert role < db_consumer and bucket < db_consumer, out
    # ... and each of those after its own host.
    assert first(f"container.{name}-pg: create") < role, out
    assert first(f"container.{name}-s3: create") < bucket, out
    assert first(f"container.{name}-forge: create") < token, out
    assert project.container("consumer")["State"]["Running"] is True
    assert env_of(project, "consumer", "RUNNER_TOKEN"), "the runner token reached the consumer"
    assert env_of(project, "consumer", "DB_PASSWORD") not in ("", None)
    # A second apply has nothing to do.
    r = project.run("apply", "--once", *offline)
    assert r.returncode == 0 and "nothing to change" in r.stdout, r.stdout + r.stderr


def test_a_failed_step_blocks_exactly_its_dependents(project, tmp_path):
    offline = start_stack(project, tmp_path, BROKEN)
    r = project.run("apply", "--once", "--json", *offline)
    out = r.stderr  # --json: the progress lines on stderr, the document on stdout
    assert r.returncode == 1, r.stdout + out
    doc = json.loads(r.stdout)
    name = project.name
    # The broken instance failed: its role's consumer, and what depends on
    # that, are blocked, naming what failed; never created.
    assert "postgres.broken" in out and "has no runnable psql" in out, out
    assert f"container.{name}-bad: BLOCKED: blocked: postgres.broken failed: " in out, out
    assert (f"container.{name}-bad-sidecar: BLOCKED: blocked: container.{name}-bad is blocked"
            in out), out
    assert project.container("bad") is None
    assert project.container("bad-sidecar") is None
    # Everything else converged: the good role and its consumer (after it),
    # and what uses nothing.
    assert out.index("postgres.main/role/app: created") < out.index(f"container.{name}-app: create"), out
    for short in ("pg", "fake-pg", "app", "plain"):
        assert project.container(short)["State"]["Running"] is True, short
    assert "Not converged: 1 failed, 2 blocked" in out, out

    # The same outcome, machine-readable.
    assert doc["converged"] is False and doc["project"] == name
    by = {c["resource"]: c for c in doc["changes"]}
    assert by[f"container.{name}-bad"]["result"] == "blocked"
    assert "postgres.broken failed" in by[f"container.{name}-bad"]["message"]
    assert by[f"container.{name}-bad-sidecar"]["result"] == "blocked"
    assert by["postgres.broken/role/other"]["result"] == "failed"
    assert by["postgres.main/role/app"]["result"] == "ok"
    app = by[f"container.{name}-app"]
    assert app["action"] == "create" and app["result"] == "ok" and app["reason"], app
    assert by["credential.app-db.password"]["action"] == "generate"
    assert {t["step"] for t in doc["timings"]} == {"credentials", "docker", "postgres"}, doc
    # No secret in the document.
    pw = project.run("secret", "show", "app-db.password", *offline[2:]).stdout.strip()
    assert pw and pw not in r.stdout
