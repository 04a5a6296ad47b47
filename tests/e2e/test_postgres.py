"""End-to-end: a PostgreSQL container (Debian's postgresql, tests/peers/postgres-image),
a role and a database from [postgres.main], and a consumer container that really logs
in with the password foundationd gave it; then `rotate`, then drift repaired. The
built binary against the real Docker engine; every login is a real one over the
spec's network."""
import subprocess
import time

import pytest

from conftest import docker, peer_image

PASS = "correct horse battery staple"

SPEC = """
[credentials.pg-super]
[credentials.pg-super.fields]
password = { generate = "password", length = 24 }
[credentials.app-db]
[credentials.app-db.fields]
password = { generate = "password", length = 32 }

[networks.@net]
[volumes.@pgdata]

[containers.@pg]
image = "${versions.postgres}"
networks = ["@net"]
volumes = ["@pgdata:/var/lib/postgresql/data"]
env = { POSTGRES_PASSWORD_FILE = "/run/secrets/pg-super" }
secret_files = { "/run/secrets/pg-super" = "${credentials.pg-super.password}" }
healthcheck = { test = ["CMD-SHELL", "pg_isready -U postgres -q"], interval = "1s", timeout = "3s", retries = 120 }
stop_timeout = "10s"

# The consumer: logs in every half second with the password in its secret
# file and records the last success.
[containers.@app]
image = "${versions.postgres}"
entrypoint = ["/bin/sh", "-c"]
command = ["while :; do if PGPASSWORD=\\"$$(cat /run/secrets/db-password)\\" psql -X -q -At -h PGHOST -U app -d appdb -c 'SELECT 1' >/dev/null 2>/tmp/login.err; then date +%s.%N >/tmp/last-login; fi; sleep 0.5; done"]
networks = ["@net"]
secret_files = { "/run/secrets/db-password" = "${credentials.app-db.password}" }
depends_on = { "@pg" = "healthy" }
stop_timeout = "1s"

[postgres.main]
container = "@pg"
superuser = "postgres"
[postgres.main.roles.app]
password = "${credentials.app-db.password}"
[postgres.main.databases.appdb]
owner = "app"
"""


@pytest.fixture(scope="module")
def pg_image():
    return peer_image("FOUNDATIOND_POSTGRES_IMAGE", "tests/peers/postgres-image")


class Stack:
    def __init__(self, project, tmp_path, pg_image):
        self.p = project
        self.dir = str(tmp_path / "state")
        self.passfile = str(tmp_path / "pass")
        with open(self.passfile, "w") as f:
            f.write(PASS + "\n")
        (tmp_path / "VERSIONS").write_text(
            f'[images]\nbusybox = "{project.image}"\npostgres = "{pg_image}"\n')
        self.pg = f"{project.name}-pg"
        self.app = f"{project.name}-app"
        self.spec = project.write(SPEC.replace("PGHOST", self.pg))

    def fd(self, *args):
        return self.p.run(*args, "--spec", self.spec, "--state-dir", self.dir,
                          "--passphrase-file", self.passfile)

    def init(self):
        r = self.p.run("init", "--state-dir", self.dir, "--passphrase-file", self.passfile,
                       "--kdf", "interactive")
        assert r.returncode == 0, r.stderr

    def secret(self, ref):
        r = self.fd("secret", "show", ref)
        assert r.returncode == 0, r.stderr
        return r.stdout.rstrip("\n")

    def login_from_app(self, password=None):
        """A real login from the consumer container over the spec's network:
        with the password in its secret file, or with `password`."""
        pw = "$(cat /run/secrets/db-password)" if password is None else f"'{password}'"
        script = (f"PGPASSWORD={pw} psql -X -At -h {self.pg} -U app -d appdb "
                  f"-c 'SELECT current_user, current_database()'")
        r = docker("exec", self.app, "sh", "-c", script, check=False)
        return r.returncode == 0 and r.stdout.strip() == "app|appdb", r.stderr

    def sql(self, statement):
        r = subprocess.run(["docker", "exec", "-i", "-u", "postgres", self.pg, "psql", "-X", "-q",
                            "-At", "-v", "ON_ERROR_STOP=1", "-d", "postgres"],
                           capture_output=True, text=True, input=statement)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def last_login(self):
        r = docker("exec", self.app, "cat", "/tmp/last-login", check=False)
        return float(r.stdout) if r.returncode == 0 and r.stdout.strip() else None

    def wait_consumer_login(self, after, limit=60):
        """Waits (bounded) until the consumer's own loop logged in after `after`."""
        deadline = time.time() + limit
        while time.time() < deadline:
            t = self.last_login()
            if t is not None and t > after:
                return t
            time.sleep(0.5)
        err = docker("exec", self.app, "cat", "/tmp/login.err", check=False).stdout
        pytest.fail(f"the consumer did not log in within {limit}s: {err}")


@pytest.fixture
def stack(project, tmp_path, pg_image):
    s = Stack(project, tmp_path, pg_image)
    yield s
    for short in ("pg", "app"):
        subprocess.run(["rm", "-rf", f"/run/foundationd/secrets/{project.name}-{short}"])


def docker_exec_time(container):
    """The container's clock (seconds since the epoch), for comparing with its marker."""
    r = docker("exec", container, "date", "+%s.%N")
    return float(r.stdout)


def test_role_database_consumer_rotation_and_drift(stack):
    stack.init()
    r = stack.fd("apply", "--once")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "postgres.main/role/app: created with LOGIN and its password" in r.stdout
    assert "postgres.main/database/appdb: created, owned by app" in r.stdout
    old = stack.secret("app-db.password")
    assert old not in r.stdout + r.stderr

    # The consumer really logs in, with the password foundationd gave it.
    ok, err = stack.login_from_app()
    assert ok, err
    stack.wait_consumer_login(after=0)
    assert stack.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'appdb'") == "app\n"

    # A second apply changes nothing in PostgreSQL.
    again = stack.fd("apply", "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "postgres." not in again.stdout

    # Rotation: ALTER ROLE first, then the consumer is recreated with the new
    # password, and logs in with it.
    app_before = stack.p.container("app")["Id"]
    rot = stack.fd("rotate", "app-db")
    assert rot.returncode == 0, rot.stdout + rot.stderr
    new = stack.secret("app-db.password")
    assert new != old
    assert new not in rot.stdout + rot.stderr and old not in rot.stdout + rot.stderr
    role_line = rot.stdout.index("postgres.main/role/app: set the rotated password")
    recreate_line = rot.stdout.index(f"container.{stack.app}: recreate")
    assert role_line < recreate_line, rot.stdout
    assert stack.p.container("app")["Id"] != app_before
    ok, err = stack.login_from_app()
    assert ok, err
    ok, _ = stack.login_from_app(password=old)
    assert not ok, "the old password still logs in after rotation"
    stack.wait_consumer_login(after=docker_exec_time(stack.app))

    # Drift: the role's password changed by hand; the consumer is locked out,
    # then the next apply sets it back and the consumer logs in again.
    stack.sql("ALTER ROLE app PASSWORD 'changed-by-hand'")
    ok, _ = stack.login_from_app()
    assert not ok
    fix = stack.fd("apply", "--once")
    assert fix.returncode == 0, fix.stdout + fix.stderr
    assert "postgres.main/role/app: password restored" in fix.stdout
    ok, err = stack.login_from_app()
    assert ok, err
    stack.wait_consumer_login(after=docker_exec_time(stack.app))

    # The owner changed by hand is set back; an extra database is left alone.
    stack.sql("CREATE ROLE intruder; ALTER DATABASE appdb OWNER TO intruder; CREATE DATABASE extra;")
    fix = stack.fd("apply", "--once")
    assert fix.returncode == 0, fix.stdout + fix.stderr
    assert "postgres.main/database/appdb: owner set back to app (was intruder)" in fix.stdout
    assert "postgres.main/database/extra: orphan: not in the spec; never dropped" in fix.stdout
    assert "postgres.main/role/intruder: orphan" in fix.stdout
    assert stack.sql("SELECT count(*) FROM pg_database WHERE datname = 'extra'") == "1\n"

    # No password on any process's command line in the PostgreSQL container.
    for secret in (old, new):
        r = docker("exec", stack.pg, "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '", check=False)
        assert secret not in r.stdout


def test_daemon_converges_roles_and_repairs_a_password(stack, tmp_path):
    """`foundationd serve`: after unseal the role, database and consumer converge;
    a password changed by hand is set back by the next reconcile (API trigger)."""
    import http.client
    import json
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    stack.init()
    token_file = tmp_path / "api-token"
    config = tmp_path / "foundationd.toml"
    config.write_text(
        f'state_dir = "{stack.dir}"\n'
        f'[api]\nlisten = ["tcp:127.0.0.1:{port}"]\ntoken_file = "{token_file}"\n'
        f'[source]\nkind = "file"\npath = "{stack.spec}"\n'
        f'[reconcile]\nresync_interval = "1h"\n[unlock]\nkdf = "interactive"\n')
    log = open(tmp_path / "daemon.log", "w+")
    proc = subprocess.Popen([stack.p.bin, "serve", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT)

    def request(method, path, body=None, token=None):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        r = conn.getresponse()
        data = r.read().decode()
        conn.close()
        return r.status, data

    def wait(cond, what, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if cond():
                    return
            except (OSError, ConnectionError):
                pass
            time.sleep(0.25)
        log.flush()
        log.seek(0)
        raise AssertionError(f"timed out waiting for {what}\n{log.read()[-4000:]}")

    def role_status():
        code, body = request("GET", "/v1/status")
        for r in json.loads(body)["resources"]:
            if r["name"] == "main/role/app":
                return r["status"]
        return None

    try:
        wait(lambda: request("GET", "/v1/status")[0] == 200, "the API")
        code, body = request("POST", "/v1/unseal", {"passphrase": PASS})
        assert code == 200, body
        wait(lambda: role_status() == "converged", "the role converged")
        wait(lambda: stack.login_from_app()[0], "a login from the consumer")
        stack.wait_consumer_login(after=0)

        stack.sql("ALTER ROLE app PASSWORD 'changed-by-hand'")
        assert not stack.login_from_app()[0]
        token = token_file.read_text().strip()
        code, body = request("POST", "/v1/reconcile", token=token)
        assert code in (200, 202), body
        wait(lambda: stack.login_from_app()[0], "the password set back by the daemon")
        stack.wait_consumer_login(after=docker_exec_time(stack.app))
        log.flush()
        log.seek(0)
        out = log.read()
        assert "postgres.apply" in out and "password restored" in out
        assert stack.secret("app-db.password") not in out
    finally:
        proc.kill()
        proc.wait()
        log.close()
