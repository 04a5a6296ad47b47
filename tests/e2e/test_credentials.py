"""End-to-end: sealed state, generated credentials, rotation, rekey, leaks and
crash safety, with the built binary against the real Docker engine."""
import json
import os
import random
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import docker, wait_for

PASS = "correct horse battery staple"

SPEC = """
[credentials.db]
vault_path = "db/credentials"
[credentials.db.fields]
username = "app"
password = { generate = "password", length = 32 }
[credentials.api]
[credentials.api.fields]
token = { generate = "hex", bytes = 32 }
[credentials.hook]
[credentials.hook.fields]
secret = { generate = "base64url", bytes = 24 }

[containers.@db]
image = "${versions.busybox}"
command = ["sleep", "3600"]
env = { DB_USER = "${credentials.db.username}", DB_PASSWORD = "${credentials.db.password}" }
secret_files = { "/run/secrets/db-password" = "${credentials.db.password}" }
stop_timeout = "1s"

[containers.@app]
image = "${versions.busybox}"
command = ["sleep", "3600"]
env = { API_TOKEN = "${credentials.api.token}", DSN = "user=app password=${credentials.db.password} host=db" }
depends_on = ["@db"]
stop_timeout = "1s"

[containers.@hook]
image = "${versions.busybox}"
command = ["sleep", "3600"]
user = "1000:1000"
secret_files = { "/run/secrets/hook" = "${credentials.hook.secret}" }
stop_timeout = "1s"
"""

FIELDS = [("db", "password"), ("api", "token"), ("hook", "secret")]


class State:
    def __init__(self, project, path, name="state"):
        self.p = project
        self.dir = str(path / name)
        self.passfile = str(path / f"{name}.pass")
        with open(self.passfile, "w") as f:
            f.write(PASS + "\n")

    def run(self, *args, passfile=None):
        return self.p.run(*args, "--state-dir", self.dir, "--passphrase-file", passfile or self.passfile)

    def init(self):
        r = self.p.run("init", "--state-dir", self.dir, "--passphrase-file", self.passfile,
                       "--kdf", "interactive")
        assert r.returncode == 0, r.stderr
        return r

    def show(self, name, field, passfile=None):
        r = self.run("secret", "show", f"{name}.{field}", passfile=passfile)
        assert r.returncode == 0, r.stderr
        return r.stdout.rstrip("\n")

    def versions(self, name, field):
        db = sqlite3.connect(f"file:{self.dir}/state.db?mode=ro", uri=True)
        try:
            return db.execute("SELECT count(*) FROM secrets WHERE kind='credential' AND name=? AND field=?",
                              (name, field)).fetchone()[0]
        finally:
            db.close()

    def state_bytes(self):
        out = b""
        for suffix in ("", "-wal", "-shm"):
            path = f"{self.dir}/state.db{suffix}"
            if os.path.exists(path):
                with open(path, "rb") as f:
                    out += f.read()
        return out


def env_of(project, short):
    c = project.container(short)
    return dict(e.split("=", 1) for e in c["Config"]["Env"])


def exec_out(project, short, *cmd):
    r = docker("exec", f"{project.name}-{short}", *cmd, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def state(project, tmp_path):
    s = State(project, tmp_path)
    yield s
    for short in ("db", "app", "hook"):
        subprocess.run(["rm", "-rf", f"/run/foundationd/secrets/{project.name}-{short}"])


def assert_consumers_hold_stored_values(project, state):
    pw = state.show("db", "password")
    token = state.show("api", "token")
    hook = state.show("hook", "secret")
    assert env_of(project, "db")["DB_PASSWORD"] == pw
    assert env_of(project, "db")["DB_USER"] == "app"
    assert env_of(project, "app")["API_TOKEN"] == token
    assert env_of(project, "app")["DSN"] == f"user=app password={pw} host=db"
    assert exec_out(project, "db", "cat", "/run/secrets/db-password") == pw
    assert exec_out(project, "hook", "cat", "/run/secrets/hook") == hook
    return pw, token, hook


def test_init_twice_and_wrong_passphrase_change_nothing(project, state, tmp_path):
    path = project.write(SPEC)
    state.init()
    r = project.run("init", "--state-dir", state.dir, "--passphrase-file", state.passfile)
    assert r.returncode == 1 and "already initialised" in r.stderr

    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not it\n")
    r = state.run("apply", "--once", "--spec", path, passfile=str(wrong))
    assert r.returncode == 1
    assert "wrong passphrase" in r.stderr
    assert project.container("db") is None
    assert all(state.versions(n, f) == 0 for n, f in FIELDS)

    r = project.run("apply", "--once", "--spec", path, "--state-dir", str(tmp_path / "none"),
                    "--passphrase-file", state.passfile)
    assert r.returncode == 1 and "foundationd init" in r.stderr


def test_generate_use_rotate_and_rekey(project, state, tmp_path):
    path = project.write(SPEC)
    state.init()

    r = state.run("plan", "--spec", path)
    assert r.returncode == 2
    assert "+ credential.db.password: generate (not generated yet)" in r.stdout

    r = state.run("apply", "--once", "--spec", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "credential.db.password: generated (version 1)" in r.stdout
    pw, token, hook = assert_consumers_hold_stored_values(project, state)
    assert len(pw) == 32 and len(token) == 64
    assert exec_out(project, "db", "stat", "-c", "%a", "/run/secrets/db-password").strip() == "400"
    assert exec_out(project, "hook", "stat", "-c", "%u:%g", "/run/secrets/hook").strip() == "1000:1000"
    host_dir = f"/run/foundationd/secrets/{project.name}-db"
    assert oct(os.stat(host_dir).st_mode & 0o777) == "0o700"

    # plan needs no passphrase and sees nothing to do
    r = project.run("plan", "--spec", path, "--state-dir", state.dir)
    assert r.returncode == 0, r.stdout + r.stderr

    ids = {s: project.container(s)["Id"] for s in ("db", "app", "hook")}
    r = state.run("rotate", "db", "--spec", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "credential.db.password: rotated (version 2)" in r.stdout
    new_pw, _, _ = assert_consumers_hold_stored_values(project, state)
    assert new_pw != pw
    assert project.container("db")["Id"] != ids["db"]
    assert project.container("app")["Id"] != ids["app"]
    assert project.container("hook")["Id"] == ids["hook"]
    assert state.versions("db", "password") == 2
    assert state.versions("api", "token") == 1

    newpass = tmp_path / "new.pass"
    newpass.write_text("a brand new passphrase\n")
    r = project.run("rekey", "--state-dir", state.dir, "--passphrase-file", state.passfile,
                    "--new-passphrase-file", str(newpass), "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    r = state.run("secret", "show", "db.password")
    assert r.returncode == 1 and "wrong passphrase" in r.stderr
    assert state.show("db", "password", passfile=str(newpass)) == new_pw


def test_no_secret_leaks_anywhere(project, state):
    path = project.write(SPEC)
    state.init()
    outputs = []

    def run(*args):
        r = state.run(*args)
        outputs.append(r.stdout + r.stderr)
        return r

    assert run("apply", "--once", "--spec", path).returncode == 0
    values = [state.show(n, f) for n, f in FIELDS]
    assert run("rotate", "db", "--spec", path).returncode == 0
    values += [state.show(n, f) for n, f in FIELDS]
    run("plan", "--spec", path)
    run("plan", "--spec", path, "--json")
    # a rotation plan before applying it, in text and JSON
    project.run("rotate", "api", "--spec", path, "--state-dir", state.dir,
                "--passphrase-file", "/nonexistent")  # fails: no passphrase, changes nothing
    assert run("apply", "--once", "--spec", path).returncode == 0

    labels = []
    for short in ("db", "app", "hook"):
        labels.append(json.dumps(project.container(short)["Config"]["Labels"]))
    state_bytes = state.state_bytes()
    for v in set(values):
        assert len(v) >= 24
        for out in outputs:
            assert v not in out
        for lab in labels:
            assert v not in lab
        assert v.encode() not in state_bytes
    # and the test itself can see a value where it is meant to be
    assert values[3] in json.dumps(project.container("db")["Config"]["Env"])


def test_kill_9_during_apply_never_regenerates_or_strands(project, tmp_path):
    """kill -9 of `apply --once` at random instants during a converge of a spec
    with several credentials and consumers, then a clean apply: every
    credential was generated exactly once and every consumer holds it."""
    trials = int(os.environ.get("FOUNDATIOND_CRASH_TRIALS", "100"))
    path = project.write(SPEC)
    rng = random.Random(int(os.environ.get("FOUNDATIOND_CRASH_SEED", "20261122")))
    killed_mid_run = 0
    try:
        for trial in range(trials):
            st = State(project, tmp_path, name=f"state{trial}")
            st.init()
            env = dict(os.environ, NO_COLOR="1")
            proc = subprocess.Popen([project.bin, "apply", "--once", "--spec", path, "--state-dir", st.dir,
                                     "--passphrase-file", st.passfile],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            # Half the trials aim at the first instants (unlock, generation),
            # the rest anywhere in the converge.
            delay = rng.uniform(0.0, 0.25) if trial % 2 == 0 else rng.uniform(0.0, 2.0)
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed_mid_run += 1
            proc.wait()
            r = st.run("apply", "--once", "--spec", path)
            assert r.returncode == 0, f"trial {trial} (kill after {delay:.3f}s): {r.stdout}{r.stderr}"
            for name, field in FIELDS:
                assert st.versions(name, field) == 1, f"trial {trial}: {name}.{field} generated twice"
            assert_consumers_hold_stored_values(project, st)
    finally:
        for short in ("db", "app", "hook"):
            subprocess.run(["rm", "-rf", f"/run/foundationd/secrets/{project.name}-{short}"])
    print(f"crash trials: {trials}, killed mid-run: {killed_mid_run}")
    assert killed_mid_run >= trials // 2


def test_a_failed_jobs_quoted_output_has_its_secrets_cut_out(project, state):
    """A job that prints its password and fails: `apply --once` quotes its last
    output in the failure, with the value replaced by the credential's name."""
    spec = """
[credentials.db]
[credentials.db.fields]
password = { generate = "password", length = 32 }

[containers.@leaky]
image = "${versions.busybox}"
command = ["sh", "-c", "echo connecting with $DB_PASSWORD; echo refused: $DB_PASSWORD; exit 4"]
env = { DB_PASSWORD = "${credentials.db.password}" }
run = "once"
"""
    path = project.write(spec)
    state.init()
    assert state.run("apply", "--once", "--spec", path).returncode == 0  # created, started
    wait_for(lambda: not project.container("leaky")["State"]["Running"], "the job exited")
    r = state.run("apply", "--once", "--spec", path)  # sees the job failed
    value = state.show("db", "password")
    assert len(value) >= 24
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "exit" in out and "4" in out, out
    assert "refused: [secret credentials.db.password]" in out, out
    assert value not in out
    # The container did print it (the value is really there to be cut).
    logs = docker("logs", f"{project.name}-leaky", check=False)
    assert value in logs.stdout + logs.stderr
