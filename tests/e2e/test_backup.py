"""End-to-end: `foundationd backup`, `backup list` and `restore` of a real PostgreSQL
(tests/peers/postgres-image) into a real restic repository (Debian's restic) in a local
directory: rows in (binary ones too), a backup, its manifest listed, the container and
its volume destroyed and re-converged empty, a tampered repository refused before
anything is written, then the restore, and the row counts and contents equal. The
restic password is watched for in every restic process's argv and environment."""
import glob
import http.client
import json
from datetime import datetime
import os
import re
import shutil
import subprocess
import threading

import pytest

from conftest import docker, free_port, peer_image, wait_for

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
[volumes.@cache]

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

[backup]
disposable = ["@cache"]
[backup.local]
path = "REPO"
[backup.offsite]
path = "OFFSITE"
[backup.retention]
keep_daily = 3
"""

# Binary rows (every byte value), a text table and a sequence; then one
# fingerprint of everything.
FILL = """
CREATE TABLE items (id int PRIMARY KEY, body bytea NOT NULL);
INSERT INTO items SELECT i, decode(repeat(lpad(to_hex(i % 256), 2, '0'), 64) || '000aff0d', 'hex')
  FROM generate_series(1, 500) i;
CREATE TABLE notes (id serial PRIMARY KEY, t text);
INSERT INTO notes (t) SELECT 'note ' || i FROM generate_series(1, 7) i;
ALTER TABLE items OWNER TO app;
"""
FINGERPRINT = ("SELECT (SELECT count(*) FROM items) || ':' || (SELECT count(*) FROM notes) || ':' || "
               "(SELECT md5(string_agg(encode(body, 'hex'), ',' ORDER BY id)) FROM items) || ':' || "
               "(SELECT md5(string_agg(t, ',' ORDER BY id)) FROM notes);")


@pytest.fixture(scope="module")
def pg_image():
    return peer_image("FOUNDATIOND_POSTGRES_IMAGE", "tests/peers/postgres-image")


class Stack:
    def __init__(self, project, tmp_path, pg_image):
        self.p = project
        self.dir = str(tmp_path / "state")
        self.repo = str(tmp_path / "repo")
        self.offsite = str(tmp_path / "offsite")
        self.passfile = str(tmp_path / "pass")
        with open(self.passfile, "w") as f:
            f.write(PASS + "\n")
        (tmp_path / "VERSIONS").write_text(
            f'[images]\nbusybox = "{project.image}"\npostgres = "{pg_image}"\n')
        self.pg = f"{project.name}-pg"
        self.spec = project.write(SPEC.replace("REPO", self.repo).replace("OFFSITE", self.offsite))

    def fd(self, *args):
        return self.p.run(*args, "--spec", self.spec, "--state-dir", self.dir,
                          "--passphrase-file", self.passfile)

    def sql(self, statement, db="appdb"):
        r = subprocess.run(["docker", "exec", "-i", "-u", "postgres", self.pg, "psql", "-X", "-q",
                            "-At", "-v", "ON_ERROR_STOP=1", "-d", db],
                           capture_output=True, text=True, input=statement)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def tables(self):
        return int(self.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public';"))


class ResticWatcher:
    """Polls /proc for restic processes while a command runs; keeps each one's argv
    and the names of its environment variables."""

    def __init__(self):
        self.seen = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            for d in glob.glob("/proc/[0-9]*"):
                try:
                    with open(d + "/cmdline", "rb") as f:
                        argv = f.read().split(b"\0")
                    if not argv or not argv[0].endswith(b"restic") or d in self.seen:
                        continue
                    with open(d + "/environ", "rb") as f:
                        env = [e.split(b"=", 1)[0].decode() for e in f.read().split(b"\0") if e]
                    self.seen[d] = ([a.decode(errors="replace") for a in argv if a], env)
                except OSError:
                    continue
            self.stop.wait(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def flip_a_byte_in_each(paths):
    for path in paths:
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            b = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([b[0] ^ 0x01]))


@pytest.fixture
def stack(project, tmp_path, pg_image):
    s = Stack(project, tmp_path, pg_image)
    yield s
    subprocess.run(["rm", "-rf", f"/run/foundationd/secrets/{project.name}-pg"])


def test_backup_destroy_restore_and_refusals(stack):
    r = stack.p.run("init", "--state-dir", stack.dir, "--passphrase-file", stack.passfile,
                    "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    r = stack.fd("apply", "--once")
    assert r.returncode == 0, r.stdout + r.stderr
    stack.sql(FILL)
    before = stack.sql(FINGERPRINT)
    assert before.startswith("500:7:")

    # A backup, with every restic process watched.
    with ResticWatcher() as watch:
        r = stack.fd("backup")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "created the backup repository" in r.stdout
    assert "postgres/main/globals:" in r.stdout
    assert "postgres/main/db/appdb:" in r.stdout
    assert "state:" in r.stdout
    assert "complete in " + stack.repo in r.stdout
    backup_id = re.search(r"^backup (\S+) to ", r.stdout, re.M).group(1)
    assert f"offsite: backup {backup_id} copied to {stack.offsite}" in r.stdout
    assert watch.seen, "no restic process was seen during the backup"
    for argv, env in watch.seen.values():
        assert "--password-file" in argv and argv[argv.index("--password-file") + 1] == "/dev/fd/3", argv
        assert not [e for e in env if e.startswith("RESTIC_")], env
        assert sorted(env) == ["PATH"] or set(env) <= {"PATH", "HOME", "TMPDIR"}, env
    # Nothing in the repository directory is readable as the dump or the password.
    assert os.path.isfile(os.path.join(stack.repo, "config"))

    # backup list: the backup with its manifest.
    r = stack.fd("backup", "list")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{backup_id}  complete" in r.stdout
    assert "rows: public.items=500, public.notes=7" in r.stdout
    r = stack.fd("backup", "list", "--json")
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(r.stdout)
    m = entry["manifest"]
    sections = {s["name"]: s for s in m["sections"]}
    assert set(sections) >= {"postgres/main/globals", "postgres/main/db/appdb",
                             "postgres/main/db/postgres", "state"}
    assert sections["postgres/main/db/appdb"]["row_counts"] == {"public.items": 500,
                                                                "public.notes": 7}
    assert all(len(s["sha256"]) == 64 and s["bytes"] > 0 for s in m["sections"])
    assert m["images"][stack.pg].startswith(stack.p.dir.joinpath("VERSIONS").read_text()
                                            .split('postgres = "')[1].split('"')[0])

    # Restoring onto the live database, which has data: refused.
    r = stack.fd("restore", "--section", "postgres/main/db/appdb")
    assert r.returncode == 1
    assert "already has 2 tables" in r.stderr and "nothing was restored" in r.stderr

    # Lose the database: the container and its volume; re-converge empty.
    docker("rm", "-f", stack.pg)
    docker("volume", "rm", f"{stack.p.name}-pgdata")
    r = stack.fd("apply", "--once")
    assert r.returncode == 0, r.stdout + r.stderr
    assert stack.tables() == 0

    # A tampered repository (one byte flipped in every pack): refused before
    # anything is written.
    pristine = stack.repo + ".pristine"
    shutil.copytree(stack.repo, pristine)
    flip_a_byte_in_each([p for p in glob.glob(stack.repo + "/data/*/*")])
    r = stack.fd("restore", "--section", "postgres/main")
    assert r.returncode == 1, r.stdout
    assert "nothing was restored" in r.stderr, r.stderr
    assert stack.tables() == 0
    # Its key tampered with: the password no longer opens it.
    shutil.rmtree(stack.repo)
    shutil.copytree(pristine, stack.repo)
    for path in glob.glob(stack.repo + "/keys/*"):
        with open(path) as f:
            key = json.load(f)
        data = key["data"]  # base64 of the sealed master key: one character changed
        i = len(data) // 2
        key["data"] = data[:i] + ("B" if data[i] != "B" else "C") + data[i + 1:]
        with open(path, "w") as f:
            json.dump(key, f)
    r = stack.fd("restore", "--section", "postgres/main")
    assert r.returncode == 1
    assert "does not open with the password in this state" in r.stderr, r.stderr
    assert stack.tables() == 0
    shutil.rmtree(stack.repo)
    shutil.move(pristine, stack.repo)

    # The offsite copy lists the same backup; the restore comes from there.
    r = stack.fd("backup", "list", "--offsite")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{backup_id}  complete" in r.stdout and "public.items=500" in r.stdout

    # The restore: roles, then every database; counts and contents equal.
    with ResticWatcher() as watch:
        r = stack.fd("restore", "--section", "postgres/main", "--offsite")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed restic check" in r.stdout
    assert "postgres/main/db/appdb: verified" in r.stdout
    assert "row counts equal to the manifest" in r.stdout
    assert stack.sql(FINGERPRINT) == before
    assert stack.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'items';") == "app"
    for argv, env in watch.seen.values():
        assert argv[argv.index("--password-file") + 1] == "/dev/fd/3", argv
    # And the converge after it changes nothing it should not.
    r = stack.fd("apply", "--once")
    assert r.returncode == 0, r.stdout + r.stderr

    # The state section: written beside the state, never in its place.
    r = stack.fd("restore", "--section", "state", "--backup", backup_id)
    assert r.returncode == 0, r.stdout + r.stderr
    out = os.path.join(stack.dir, f"state.db.restored-{backup_id}")
    with open(out, "rb") as f:
        assert f.read(16) == b"SQLite format 3\0"
    assert os.stat(out).st_mode & 0o777 == 0o600
    r = stack.fd("restore", "--section", "state", "--backup", backup_id)
    assert r.returncode == 1 and "exists" in r.stderr

    # A section that does not exist: the ones that do are named.
    r = stack.fd("restore", "--section", "vault")
    assert r.returncode == 1
    assert "no section \"vault\"" in r.stderr and "postgres/main/db/appdb" in r.stderr


def test_offsite_unreachable_keeps_the_local_copy(project, tmp_path):
    """A spec with nothing but the state to back up (no container at all): the offsite
    target cannot be written (its path is under a regular file), so the backup is
    complete locally, the offsite copy is reported failed, and the exit code says so."""
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    spec = project.write(f"""
[backup.local]
path = "{tmp_path / 'repo'}"
[backup.offsite]
path = "{blocker / 'offsite'}"
""")
    state = str(tmp_path / "state")
    r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile),
                    "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    args = ["--spec", spec, "--state-dir", state, "--passphrase-file", str(passfile)]
    r = project.run("backup", *args)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "complete in " + str(tmp_path / "repo") in r.stdout
    assert "was NOT copied to [backup.offsite]" in r.stderr and "local copy is kept" in r.stderr
    r = project.run("backup", "list", *args)
    assert r.returncode == 0, r.stderr
    assert "  complete  " in r.stdout and "state " in r.stdout


def test_backup_needs_a_backup_table_and_a_restore_needs_a_backup(stack, tmp_path):
    r = stack.p.run("init", "--state-dir", stack.dir, "--passphrase-file", stack.passfile,
                    "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    # No backup was ever taken: no password in the state, nothing to restore from.
    r = stack.fd("restore", "--section", "postgres/main")
    assert r.returncode == 1
    assert "no backup repository password" in r.stderr
    # A spec without [backup].
    spec = stack.p.write(SPEC.split("[backup]")[0])
    r = stack.p.run("backup", "--spec", spec, "--state-dir", stack.dir,
                    "--passphrase-file", stack.passfile)
    assert r.returncode == 1
    assert "has no [backup]" in r.stderr


def test_daemon_backs_up_on_schedule_and_reports(project, tmp_path):
    """The daemon takes the first backup once unsealed and reports it (GET /v1/status,
    /metrics, `status`). Its offsite target cannot be written at first: the backup is
    local only, reported `offsite_failed` and counted, never complete. Once the target
    can be written, a backup taken by the CLI is complete and the daemon reports it
    without a restart, then verifies it on its own (`verify_schedule`: at once for a
    complete backup never verified) and reports that too."""
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    offsite = tmp_path / "offsite-mount"
    offsite.write_text("")  # a regular file where the mount's directory should be
    spec = project.write(f"""
[backup]
schedule = "1h"
verify_schedule = "2h"
[backup.local]
path = "{tmp_path / 'repo'}"
[backup.offsite]
path = "{offsite / 'repo'}"
""")
    state = str(tmp_path / "state")
    api_port = free_port()
    config = tmp_path / "foundationd.toml"
    config.write_text(
        f'state_dir = "{state}"\n'
        f'[api]\nlisten = ["unix:{tmp_path}/api.sock", "tcp:127.0.0.1:{api_port}"]\n'
        f'token_file = "{tmp_path}/api-token"\n'
        f'[source]\nkind = "file"\npath = "{spec}"\n'
        '[reconcile]\nresync_interval = "1h"\n[unlock]\nkdf = "interactive"\n')
    r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile),
                    "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    log = open(tmp_path / "daemon.log", "w+")

    def output():
        log.flush()
        log.seek(0)
        return log.read()

    def get(path):
        conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=15)
        conn.request("GET", path)
        body = conn.getresponse().read().decode()
        conn.close()
        return body

    def backup_status():
        return json.loads(get("/v1/status"))["backup"]

    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen([project.bin, "serve", "--config", str(config)], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: backup_status() is not None, "the daemon answering", output=output)
        b = backup_status()
        assert b["condition"] == "never" and b["last_attempt"] is None, b
        wait_for(lambda: "locked" in (backup_status()["waiting"] or ""),
                 "the due backup waiting for the unseal", output=output)
        r = project.run("unseal", "--config", str(config), "--passphrase-file", str(passfile))
        assert r.returncode == 0, r.stdout + r.stderr

        wait_for(lambda: backup_status()["last_attempt"] is not None,
                 "the first scheduled backup", timeout=120, output=output)
        b = backup_status()
        assert b["condition"] == "offsite_failed", b
        attempt = b["last_attempt"]
        assert attempt["ok"] and attempt["offsite"] == "failed" and attempt["by"] == "daemon", b
        assert b["last_complete"] is None, b
        assert attempt["id"] in b["message"] and "offsite copy failed" in b["message"], b
        metrics = get("/metrics")
        assert 'foundationd_backup_condition{condition="offsite_failed"} 1' in metrics
        assert 'foundationd_backup_failures_total{reason="offsite"} 1' in metrics
        assert "foundationd_backup_last_success_timestamp_seconds " not in metrics
        assert "event=backup.offsite_failed" in output()
        # The local copy is kept, and listed complete there.
        args = ["--spec", spec, "--state-dir", state, "--passphrase-file", str(passfile)]
        r = project.run("backup", "list", *args)
        assert r.returncode == 0, r.stderr
        assert f"{attempt['id']}  complete" in r.stdout, r.stdout
        r = project.run("status", "--config", str(config))
        assert "backup:" in r.stdout and "OFFSITE_FAILED" in r.stdout, r.stdout

        # The offsite target answers again: a backup taken by the CLI is complete,
        # and the daemon reports it (no restart).
        offsite.unlink()
        offsite.mkdir()
        r = project.run("backup", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        cli_id = re.search(r"^backup (\S+) to ", r.stdout, re.M).group(1)
        wait_for(lambda: backup_status()["condition"] == "ok", "the CLI's backup reported",
                 output=output)
        b = backup_status()
        assert b["last_complete"]["id"] == cli_id and b["last_complete"]["by"] == "cli", b
        assert b["last_complete"]["offsite"] == "confirmed", b
        assert {s["name"] for s in b["last_complete"]["sections"]} == {"state"}, b
        assert b["next_due"] > b["last_complete"]["finished"], b
        metrics = get("/metrics")
        assert 'foundationd_backup_condition{condition="ok"} 1' in metrics
        assert "foundationd_backup_last_success_timestamp_seconds " in metrics
        assert 'foundationd_backup_section_size_bytes{section="state"}' in metrics
        r = project.run("status", "--config", str(config))
        assert f"backup:     ok" in r.stdout and cli_id in r.stdout, r.stdout

        # The daemon verifies the complete backup (never verified) on its own.
        assert b["verification"]["last_complete"] in ("never", "verified"), b
        wait_for(lambda: backup_status()["verification"]["last_complete"] == "verified",
                 "the daemon's scheduled verify", timeout=120, output=output)
        v = backup_status()["verification"]
        assert v["last"]["id"] == cli_id and v["last"]["ok"] and v["last"]["by"] == "daemon", v
        assert v["running"] is False and v["last_verified"] is not None, v
        # The next one in verify_schedule (2 h) after it, not sooner.
        gap = (datetime.fromisoformat(v["next_due"]) -
               datetime.fromisoformat(v["last"]["finished"])).total_seconds()
        assert 7199 <= gap <= 7201, v
        assert "event=backup.verified" in output()
        assert "foundationd_backup_last_verified_timestamp_seconds " in get("/metrics")
        r = project.run("backup", "list", *args)
        assert re.search(rf"^{re.escape(cli_id)}\s.*verified", r.stdout, re.M), r.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
