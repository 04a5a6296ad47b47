"""End-to-end: the disaster-recovery rehearsal (docs/dr.md, dr/RUNBOOK.md section 3).

Real peers: OpenBao on integrated storage (raft, its config a [files.*] file), PostgreSQL,
a consumer container that logs in to PostgreSQL with the password foundationd gives it.
Real data goes in (rows, the credentials mirrored into Vault, one of them rotated), a
backup is taken into [backup.local] and copied to [backup.offsite] (a directory standing
for another host), and the recovery bundle is exported into a git clone of the spec
repository and committed. Then everything is destroyed: every container and volume of the
project, the state directory, the local repository. dr/restore-to-fresh-host runs with
only a fresh clone of the spec repository, the passphrase and the offsite directory, a new
state directory and a new HOME; rows, Vault's secrets and the rotated credential are back,
the consumer logs in with its current password, and a second `apply --once` changes
nothing. Then the bundle's refusals: a flipped byte, a wrong passphrase."""
import json
import os
import subprocess

import pytest

from conftest import docker, free_port, peer_image

PASS = "correct horse battery staple, rehearsed"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RAFT = """
ui            = false
disable_mlock = true
api_addr      = "http://127.0.0.1:8200"
cluster_addr  = "http://127.0.0.1:8201"
storage "raft" {
  path    = "/openbao/data"
  node_id = "foundation"
}
listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true
}
"""

SPEC = """
[credentials.pg-super]
vault_path = "postgres/superuser"
[credentials.pg-super.fields]
password = { generate = "password", length = 24 }
[credentials.app-db]
vault_path = "app/db"
[credentials.app-db.fields]
username = "app"
password = { generate = "password", length = 32 }

[networks.@net]
[volumes.@pgdata]
[volumes.@bao-data]

[files.bao-config]
source = "raft.hcl"

[containers.@bao]
image = "${versions.openbao}"
command = ["server", "-config=/openbao/config/raft.hcl"]
volumes = ["@bao-data:/openbao/data"]
files = { "/openbao/config/raft.hcl" = "bao-config" }
ports = ["127.0.0.1:BAOPORT:8200"]
stop_timeout = "2s"

[vault]
container = "@bao"
address = "http://127.0.0.1:BAOPORT"
key_shares = 3
key_threshold = 2
kv_mount = "foundation"

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
[postgres.main.roles.app]
password = "${credentials.app-db.password}"
[postgres.main.databases.appdb]
owner = "app"

[containers.@app]
image = "${versions.postgres}"
networks = ["@net"]
entrypoint = ["sleep", "infinity"]
secret_files = { "/run/secrets/db-password" = "${credentials.app-db.password}" }
depends_on = ["@pg"]
stop_timeout = "1s"

[backup]
recovery = "dr/recovery.sealed"
[backup.local]
path = "LOCAL"
[backup.offsite]
path = "OFFSITE"
"""

FILL = """
CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO items SELECT i, md5(i::text) FROM generate_series(1, 300) i;
ALTER TABLE items OWNER TO app;
"""
FINGERPRINT = "SELECT count(*) || ':' || md5(string_agg(body, ',' ORDER BY id)) FROM items;"


def git(*args, cwd):
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                       env=dict(os.environ, GIT_AUTHOR_NAME="op", GIT_AUTHOR_EMAIL="op@x",
                                GIT_COMMITTER_NAME="op", GIT_COMMITTER_EMAIL="op@x"))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def images():
    return (peer_image("FOUNDATIOND_POSTGRES_IMAGE", "tests/peers/postgres-image"),
            peer_image("FOUNDATIOND_OPENBAO_IMAGE", "tests/peers/openbao-image"))


def test_rebuild_a_lost_host_from_the_spec_repository_and_the_passphrase(project, tmp_path,
                                                                          images):
    pg_image, bao_image = images
    name = project.name
    local, offsite = tmp_path / "local-repo", tmp_path / "offsite-host" / "repo"
    # The spec repository: a bare "origin" and the operator's checkout.
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", str(origin), cwd=tmp_path)
    work = tmp_path / "checkout"
    git("clone", "-q", str(origin), str(work), cwd=tmp_path)
    (work / "VERSIONS").write_text(
        f'[images]\npostgres = "{pg_image}"\nopenbao = "{bao_image}"\n')
    (work / "raft.hcl").write_text(RAFT)
    body = (SPEC.replace("BAOPORT", str(free_port())).replace("LOCAL", str(local))
            .replace("OFFSITE", str(offsite)).replace("@", name + "-"))
    (work / "foundation.toml").write_text(
        f'spec_version = 1\nproject = "{name}"\nversions = "VERSIONS"\n' + body)
    spec = str(work / "foundation.toml")
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    state = str(tmp_path / "state")

    def fd(*args, state_dir=state, spec_file=spec):
        return project.run(*args, "--spec", spec_file, "--state-dir", state_dir,
                           "--passphrase-file", str(passfile))

    def sql(statement, db="appdb"):
        r = subprocess.run(["docker", "exec", "-i", "-u", "postgres", f"{name}-pg", "psql",
                            "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db],
                           capture_output=True, text=True, input=statement)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def consumer_login():
        # The consumer's own secret file, over the network, as the app role.
        return subprocess.run(
            ["docker", "exec", f"{name}-app", "sh", "-c",
             f'PGPASSWORD="$(cat /run/secrets/db-password)" psql -X -At -h {name}-pg -U app '
             '-d appdb -c "SELECT count(*) FROM items"'],
            capture_output=True, text=True)

    # 1. The host as it runs: state, converge, data, a rotation.
    r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile),
                    "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    r = fd("apply", "--once")
    assert r.returncode == 0, r.stdout + r.stderr
    sql(FILL)
    before = sql(FINGERPRINT)
    assert before.startswith("300:")
    r = fd("rotate", "app-db")
    assert r.returncode == 0, r.stdout + r.stderr
    r = fd("secret", "show", "app-db.password")
    assert r.returncode == 0, r.stderr
    current_password = r.stdout.strip()
    assert consumer_login().stdout.strip() == "300"

    # 2. A backup, locally and offsite; Vault in it through its snapshot API.
    r = fd("backup")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vault: " in r.stdout and "secrets under foundation/" in r.stdout, r.stdout
    assert "not included: vault" not in r.stdout
    assert "offsite: backup " in r.stdout and "copied to" in r.stdout

    # 3. The recovery bundle into the spec repository, committed and pushed.
    r = fd("backup", "export-recovery")
    assert r.returncode == 0, r.stdout + r.stderr
    sealed = (work / "dr" / "recovery.sealed").read_text()
    assert current_password not in sealed and str(offsite) not in sealed
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "spec, with the recovery bundle", cwd=work)
    git("push", "-q", "origin", "HEAD", cwd=work)

    # 4. The host is lost: every container and volume, the state, the local
    # repository, the operator's checkout. What is left: origin, the passphrase, offsite.
    project.cleanup()
    assert not docker("ps", "-aq", "--filter", f"label=foundationd.project={name}").stdout.strip()
    subprocess.run(["rm", "-rf", state, str(local), str(work),
                    f"/run/foundationd/secrets/{name}-pg", f"/run/foundationd/secrets/{name}-app"],
                   check=True)

    # 5. The fresh host: a new clone, a new HOME, a new state directory.
    home = tmp_path / "fresh-home"
    home.mkdir()
    clone = tmp_path / "fresh-clone"
    git("clone", "-q", str(origin), str(clone), cwd=tmp_path)
    new_state = str(tmp_path / "fresh-state")
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "NO_COLOR": "1",
           "FOUNDATIOND_BIN": project.bin}
    r = subprocess.run([os.path.join(ROOT, "dr", "restore-to-fresh-host"), "--state-dir",
                        new_state, "--passphrase-file", str(passfile), str(clone)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "state: backup" in r.stdout and "opened with the passphrase" in r.stdout
    assert "vault: snapshot restored" in r.stdout, r.stdout
    assert "vault: unsealed with the keys of the state" in r.stdout
    assert "as in the manifest" in r.stdout
    assert "postgres/main/db/appdb: restored" in r.stdout, r.stdout

    # 6. Everything is back.
    assert sql(FINGERPRINT) == before
    login = consumer_login()
    assert login.returncode == 0 and login.stdout.strip() == "300", login.stderr
    new_spec = str(clone / "foundation.toml")
    r = fd("secret", "show", "app-db.password", state_dir=new_state, spec_file=new_spec)
    assert r.returncode == 0 and r.stdout.strip() == current_password
    r = fd("apply", "--once", state_dir=new_state, spec_file=new_spec)
    assert r.returncode == 0, r.stdout + r.stderr
    r = fd("plan", state_dir=new_state, spec_file=new_spec)
    assert r.returncode == 0, r.stdout + r.stderr  # 0: no changes

    # 7. A second run onto the restored host is refused and changes nothing.
    r = subprocess.run([os.path.join(ROOT, "dr", "restore-to-fresh-host"), "--state-dir",
                        new_state, "--passphrase-file", str(passfile), str(clone)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "never replaces one" in r.stderr

    # 8. The bundle: one flipped byte, or a wrong passphrase, refused before anything.
    bundle = clone / "dr" / "recovery.sealed"
    data = bytearray(bundle.read_bytes())
    i = data.index(b'"sealed": "') + 40
    data[i] = ord("A") if data[i] != ord("A") else ord("B")
    bad = tmp_path / "flipped.sealed"
    bad.write_bytes(bytes(data))
    empty_state = str(tmp_path / "never")
    r = project.run("restore", "--from-recovery", str(bad), "--state-dir", empty_state,
                    "--passphrase-file", str(passfile))
    assert r.returncode == 1 and "altered or truncated" in r.stderr, r.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase at all\n")
    r = project.run("restore", "--from-recovery", str(bundle), "--state-dir", empty_state,
                    "--passphrase-file", str(wrong))
    assert r.returncode == 1 and "passphrase does not open" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(empty_state, "state.db"))


FILE_STORAGE_SPEC = """
[credentials.app]
vault_path = "app/db"
[credentials.app.fields]
password = { generate = "password", length = 24 }

[volumes.@bao-data]

[containers.@bao]
image = "${versions.openbao}"
volumes = ["@bao-data:/openbao/data"]
ports = ["127.0.0.1:BAOPORT:8200"]
stop_timeout = "2s"

[vault]
container = "@bao"
address = "http://127.0.0.1:BAOPORT"
key_shares = 1
key_threshold = 1
kv_mount = "foundation"

[backup.local]
path = "LOCAL"
"""


def test_a_vault_on_file_storage_is_refused_by_name_and_no_backup_is_complete(project,
                                                                             tmp_path, images):
    """The test image's own configuration is `file` storage, which has no snapshot API:
    the backup fails naming the requirement (raft), and nothing is listed complete."""
    _, bao_image = images
    name = project.name
    (tmp_path / "VERSIONS").write_text(f'[images]\nopenbao = "{bao_image}"\n')
    body = (FILE_STORAGE_SPEC.replace("BAOPORT", str(free_port()))
            .replace("LOCAL", str(tmp_path / "repo")).replace("@", name + "-"))
    spec = tmp_path / "foundation.toml"
    spec.write_text(f'spec_version = 1\nproject = "{name}"\nversions = "VERSIONS"\n' + body)
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    state = str(tmp_path / "state")

    def fd(*args):
        return project.run(*args, "--spec", str(spec), "--state-dir", state,
                           "--passphrase-file", str(passfile))

    r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile),
                    "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    r = fd("apply", "--once")
    assert r.returncode == 0, r.stdout + r.stderr
    r = fd("backup")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "needs integrated storage" in r.stderr and 'storage "raft"' in r.stderr, r.stderr
    r = fd("backup", "list", "--json")
    assert r.returncode == 0, r.stderr
    assert all(not b["complete"] for b in json.loads(r.stdout)), r.stdout
