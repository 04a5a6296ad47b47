"""End-to-end: a stateful service's new image is guarded (docs/dr.md "Upgrades"). A real
PostgreSQL (tests/peers/postgres-image, PostgreSQL 15) with rows in it and [backup]:
- a new image of the same major version: `apply --once` takes a backup first (its
  manifest says why), then recreates the container on the same data;
- an image that holds another major version (PG_MAJOR=16): refused before anything else,
  naming the upgrade path; the container keeps running its image on its data, and no
  backup is taken for an upgrade that does not happen."""
import json
import subprocess

import pytest

from conftest import docker, peer_image

PASS = "correct horse battery staple"

SPEC = """
[credentials.pg-super]
[credentials.pg-super.fields]
password = { generate = "password", length = 24 }

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

[postgres.main]
container = "@pg"
superuser = "postgres"
[postgres.main.databases.appdb]
owner = "postgres"

[backup.local]
path = "REPO"
"""


@pytest.fixture(scope="module")
def pg_image():
    return peer_image("FOUNDATIOND_POSTGRES_IMAGE", "tests/peers/postgres-image")


def derived(base, tag, line):
    """A local image FROM `base` with one more Dockerfile line (no registry needed)."""
    r = subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=f"FROM {base}\n{line}\n",
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return tag


def test_new_image_backs_up_first_and_a_major_change_is_refused(project, tmp_path, pg_image):
    name = project.name
    repo = tmp_path / "repo"
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    versions = tmp_path / "VERSIONS"
    versions.write_text(f'[images]\nbusybox = "{project.image}"\npostgres = "{pg_image}"\n')
    spec = project.write(SPEC.replace("REPO", str(repo)))
    state = str(tmp_path / "state")
    args = ["--spec", spec, "--state-dir", state, "--passphrase-file", str(passfile)]
    pg = f"{name}-pg"
    next_tag = f"fd-test-pg-next:{name}"
    major_tag = f"fd-test-pg-16:{name}"

    def sql(statement):
        r = subprocess.run(["docker", "exec", "-i", "-u", "postgres", pg, "psql", "-X", "-q", "-At",
                            "-v", "ON_ERROR_STOP=1", "-d", "appdb"],
                           capture_output=True, text=True, input=statement)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def image_id():
        return docker("inspect", "-f", "{{.Image}}", pg).stdout.strip()

    def backups():
        r = project.run("backup", "list", "--json", *args)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    try:
        r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile),
                        "--kdf", "interactive")
        assert r.returncode == 0, r.stderr
        r = project.run("apply", "--once", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        sql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 42);")

        # The same major version, a new image: backed up first, then recreated.
        derived(pg_image, next_tag, "LABEL org.foundationd.test=next")
        versions.write_text(f'[images]\nbusybox = "{project.image}"\npostgres = "{next_tag}"\n')
        r = project.run("plan", "--spec", spec, "--state-dir", state)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "postgres.main gets a new image: a backup is taken first" in r.stdout, r.stdout
        r = project.run("apply", "--once", *args)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "a stateful service's image changes: backing up first (postgres.main" in out, out
        assert out.index("backing up first") < out.index(f"container.{pg}: recreate"), out
        [b] = backups()
        assert b["complete"], b
        assert b["manifest"]["reason"].startswith("before an upgrade: postgres.main (container "
                                                  f"{pg}: {pg_image} -> {next_tag})"), b
        assert sql("SELECT count(*) FROM t;") == "42"
        upgraded = image_id()
        assert upgraded == docker("image", "inspect", "-f", "{{.Id}}", next_tag).stdout.strip()

        # Another major version: refused, nothing started on the old data, no backup.
        derived(pg_image, major_tag, "ENV PG_MAJOR=16")
        versions.write_text(f'[images]\nbusybox = "{project.image}"\npostgres = "{major_tag}"\n')
        r = project.run("apply", "--once", *args)
        out = r.stdout + r.stderr
        assert r.returncode == 1, out
        assert ("postgres.main's data directory was initialised by PostgreSQL 15 and the new "
                "image holds PostgreSQL 16") in out, out
        assert "pg_upgrade" in out and "foundationd restore --section postgres/main" in out, out
        assert "backing up first" not in out, out
        assert image_id() == upgraded
        assert docker("inspect", "-f", "{{.State.Running}}", pg).stdout.strip() == "true"
        assert sql("SELECT count(*) FROM t;") == "42"
        assert len(backups()) == 1
        # The next apply refuses again (no half step).
        r = project.run("apply", "--once", *args)
        assert r.returncode == 1 and "initialised by PostgreSQL 15" in r.stdout + r.stderr
    finally:
        subprocess.run(["rm", "-rf", f"/run/foundationd/secrets/{pg}"])
        for tag in (next_tag, major_tag):
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
