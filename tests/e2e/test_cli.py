"""End-to-end: the foundationd CLI against the real Docker engine."""
import json
import os
import re
import subprocess

from conftest import docker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STACK = """
[networks.@net]
[volumes.@data]
[containers.@web]
image = "${versions.busybox}"
command = ["sh", "-c", "echo hi > /data/index.html; exec httpd -f -p 8080 -h /data"]
networks = [{ name = "@net", aliases = ["web"] }]
volumes = ["@data:/data"]
stop_timeout = "1s"
healthcheck = { test = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"], interval = "300ms", retries = 10 }
[containers.@client]
image = "${versions.busybox}"
command = ["sh", "-c", "while true; do wget -q -O /dev/null http://web:8080/ && echo ok; sleep 1; done"]
networks = ["@net"]
stop_timeout = "1s"
depends_on = { @web = "healthy" }
"""


def test_check_accepts_the_examples(fd_bin):
    for spec in ("demo.toml", "foundation.toml"):
        r = subprocess.run([fd_bin, "check", os.path.join(ROOT, "config", "examples", spec)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "valid" in r.stdout


def test_check_reports_every_error_located_and_exits_1(project):
    path = project.write("""
[containers.@a]
image = "${versions.busybox}"
helthcheck = { test = ["CMD", "true"] }
restart = "sometimes"
depends_on = ["@nope"]
""")
    r = project.run("check", path)
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if ": error: " in l]
    assert len(errors) >= 3, r.stderr
    for line in errors:
        assert re.match(r"^.+foundation\.toml:\d+:\d+: error: ", line), line
    assert 'did you mean "healthcheck"' in r.stderr


def test_plan_apply_noop_and_drift_repair(project):
    path = project.write(STACK)

    r = project.run("plan", "--spec", path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"+ container.{project.name}-web: create" in r.stdout
    assert "Plan: 4 to create" in r.stdout

    r = project.run("plan", "--spec", path, "--json")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["has_changes"] is True
    assert doc["summary"]["create"] == 4

    r = project.run("apply", "--once", "--spec", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Converged" in r.stdout
    web = project.container("web")
    assert web["State"]["Running"] and web["State"]["Health"]["Status"] == "healthy"
    assert web["Config"]["Labels"]["foundationd.managed"] == "true"
    assert project.container("client")["State"]["Running"]

    r = project.run("plan", "--spec", path)
    assert r.returncode == 0, r.stdout
    assert "No changes." in r.stdout

    r = project.run("apply", "--once", "--spec", path)
    assert r.returncode == 0
    m = re.search(r"(\d+) Docker API call", r.stdout)
    assert m and int(m.group(1)) == 3, r.stdout
    # One summary for the whole converge, and no stale note.
    assert "No changes" not in r.stdout and "note:" not in r.stdout + r.stderr, r.stdout + r.stderr
    summary = [l for l in r.stdout.splitlines() if l.startswith("Converged:")]
    assert len(summary) == 1 and "already matches the spec" in summary[0], r.stdout

    # Drift: a container removed behind foundationd's back, another killed.
    docker("rm", "-f", f"{project.name}-client")
    docker("kill", f"{project.name}-web")
    r = project.run("plan", "--spec", path)
    assert r.returncode == 2
    assert f"> container.{project.name}-web: start" in r.stdout
    assert f"+ container.{project.name}-client: create" in r.stdout
    r = project.run("apply", "--once", "--spec", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"container.{project.name}-web: started [" in r.stdout, r.stdout
    assert project.container("web")["State"]["Running"]
    assert project.container("client")["State"]["Running"]


def test_invalid_spec_changes_nothing(project):
    path = project.write(STACK + '\n[containers.@bad]\nimage = 42\n')
    r = project.run("apply", "--once", "--spec", path)
    assert r.returncode == 1
    assert "nothing was changed" in r.stderr
    assert project.container("web") is None
    nets = docker("network", "ls", "-q", "--filter", f"label=foundationd.project={project.name}").stdout
    assert nets.strip() == ""


def test_changed_spec_recreates_only_what_changed(project):
    path = project.write(STACK)
    assert project.run("apply", "--once", "--spec", path).returncode == 0
    web_id = project.container("web")["Id"]
    client_id = project.container("client")["Id"]
    path = project.write(STACK.replace("sleep 1;", "sleep 2;"))
    r = project.run("plan", "--spec", path)
    assert r.returncode == 2
    assert f"~ container.{project.name}-client: recreate (command changed)\n" in r.stdout
    assert '      command: ["sh","-c","while true; do' in r.stdout
    r = project.run("plan", "--spec", path, "--json")
    change = [c for c in json.loads(r.stdout)["changes"] if c["action"] == "recreate"][0]
    assert change["fields"][0]["field"] == "command"
    assert isinstance(change["fields"][0]["before"], list) and "sleep 1;" in change["fields"][0]["before"][2]
    r = project.run("apply", "--once", "--spec", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"container.{project.name}-client: recreated [" in r.stdout
    assert "startd" not in r.stdout
    assert project.container("web")["Id"] == web_id
    assert project.container("client")["Id"] != client_id


def test_no_state_or_passphrase_needed_without_credentials(project, tmp_path):
    path = project.write(STACK)
    state = tmp_path / "no-such-state"
    r = project.run("apply", "--once", "--spec", path, "--state-dir", str(state))
    assert r.returncode == 0, r.stdout + r.stderr
    assert not state.exists()


# --- help, usage and the daemon config --------------------------------------

def commands_in_usage(fd_bin):
    r = subprocess.run([fd_bin, "help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = []
    for line in r.stdout.splitlines():
        m = re.match(r"^  ([a-z][a-z-]*(?: (?:show|set))?)\b", line)
        if m and m.group(1) not in names:
            names.append(m.group(1))
    return names


def test_no_command_exits_2_with_the_usage(fd_bin):
    r = subprocess.run([fd_bin], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("usage: foundationd COMMAND")
    r = subprocess.run([fd_bin, "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2
    assert 'unknown command "frobnicate"' in r.stderr


def test_each_command_has_its_own_help(fd_bin):
    names = commands_in_usage(fd_bin)
    for expected in ("check", "plan", "apply", "serve", "init", "rekey", "rotate", "secret show",
                     "status", "unseal", "preflight", "version"):
        assert expected in names, names
    texts = {}
    for name in names:
        r = subprocess.run([fd_bin, *name.split(), "--help"], capture_output=True, text=True)
        assert r.returncode == 0, (name, r.stderr)
        assert r.stdout.startswith(f"usage: foundationd {name}"), (name, r.stdout)
        assert "\nexample:\n  foundationd " + name.split()[0] in r.stdout, (name, r.stdout)
        h = subprocess.run([fd_bin, "help", *name.split()], capture_output=True, text=True)
        assert h.stdout == r.stdout
        texts[name] = r.stdout
    assert len(set(texts.values())) == len(texts)  # no two commands print the same text
    # The options a command takes are listed for it, and only those.
    assert "--json" in texts["plan"] and "--once" not in texts["plan"]
    assert "--once" in texts["apply"] and "--json" in texts["apply"]
    assert "--passphrase-file" in texts["apply"] and "--passphrase-file" in texts["plan"]
    assert "--graph" in texts["plan"] and "--graph" not in texts["apply"]
    assert "--new-passphrase-file" in texts["rekey"] and "--kdf" in texts["init"]
    # A command's own flag given to another is refused, naming the command.
    r = subprocess.run([fd_bin, "apply", "--once", "--offsite"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "--offsite is not an option of `apply`" in r.stderr
    r = subprocess.run([fd_bin, "secret"], capture_output=True, text=True)
    assert r.returncode == 2 and "foundationd secret show" in r.stderr


def test_check_config_validates_a_daemon_config(fd_bin, tmp_path):
    example = os.path.join(ROOT, "config", "examples", "foundationd.toml")
    r = subprocess.run([fd_bin, "check", "--config", example], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "valid daemon config" in r.stdout and "0 warning(s)" in r.stdout
    bad = tmp_path / "foundationd.toml"
    bad.write_text('state_dir = "relative/dir"\n[api]\nlisten = ["tcp:127.0.0.1:99999"]\n'
                   '[unlock]\nkdf = "moderat"\n[sorce]\n')
    r = subprocess.run([fd_bin, "check", "--config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if ": error: " in l]
    assert len(errors) >= 4, r.stderr
    for line in errors:
        assert re.match(r"^.+foundationd\.toml:\d+:\d+: error: ", line), line
    assert 'did you mean "moderate"' in r.stderr
    # A spec is not a daemon config, and says so (it is not checked as a spec).
    spec = os.path.join(ROOT, "config", "examples", "demo.toml")
    r = subprocess.run([fd_bin, "check", "--config", spec], capture_output=True, text=True)
    assert r.returncode == 1 and "error" in r.stderr


def test_docs_config_lists_every_key(fd_bin):
    """docs/config.md and the example name every key the parser accepts."""
    src = open(os.path.join(ROOT, "config", "daemon_config.cpp")).read()
    keys = set()
    for group in re.findall(r"checkKeys\([^{]*\{([^}]*)\}", src):
        keys.update(re.findall(r'"([a-z_]+)"', group))
    assert {"state_dir", "listen", "token_file", "socket", "kind", "url", "resync_interval",
            "kdf", "keep_key_in_memory", "webhook_secret"} <= keys
    doc = open(os.path.join(ROOT, "docs", "config.md")).read()
    example = open(os.path.join(ROOT, "config", "examples", "foundationd.toml")).read()
    for key in keys:
        assert f"`{key}`" in doc or f"] {key}`" in doc or f"[{key}]" in doc, key
        assert re.search(rf"^#? ?{key} = ", example, re.M) or f"[{key}]" in example, key


def test_no_doc_points_outside_the_repository():
    pattern = re.compile(r"INTERFACES\.md|\bSPEC\.md|TESTING\.md|CONTEXT\.md|shared/design")
    offenders = []
    for folder in ("docs", "config/examples"):
        for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
            for name in names:
                path = os.path.join(dirpath, name)
                text = open(path, errors="replace").read()
                offenders += [os.path.relpath(path, ROOT) for _ in pattern.findall(text)]
    text = open(os.path.join(ROOT, "README.md")).read()
    offenders += ["README.md" for _ in pattern.findall(text)]
    assert offenders == []


# --- plan without the state ---------------------------------------------------

CRED_SPEC = """
[credentials.db]
[credentials.db.fields]
password = { generate = "password", length = 24 }

[containers.@app]
image = "${versions.busybox}"
command = ["sleep", "3600"]
env = { DB_PASSWORD = "${credentials.db.password}" }
stop_timeout = "1s"
"""

PASS = "an operator's first hour"


def test_plan_without_the_state_says_it_cannot_know(project, tmp_path):
    path = project.write(CRED_SPEC)
    state = str(tmp_path / "state")
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile), "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    r = project.run("apply", "--once", "--spec", path, "--state-dir", state, "--passphrase-file", str(passfile))
    assert r.returncode == 0, r.stdout + r.stderr
    r = project.run("plan", "--spec", path, "--state-dir", state)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No changes." in r.stdout

    r = project.run("plan", "--spec", path, "--state-dir", str(tmp_path / "elsewhere"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "? credential.db: cannot compare without the state" in r.stdout
    assert f"? container.{project.name}-app: cannot compare env.DB_PASSWORD without the state" in r.stdout
    assert "generate" not in r.stdout and "recreate" not in r.stdout
    r = project.run("plan", "--spec", path, "--state-dir", str(tmp_path / "elsewhere"), "--json")
    assert r.returncode == 0
    doc = json.loads(r.stdout)
    assert doc["has_changes"] is False
    assert {u["resource"] for u in doc["unknown"]} == {"credential.db", f"container.{project.name}-app"}
    # A change that does not depend on the credential is still shown.
    path = project.write(CRED_SPEC.replace('"3600"', '"3601"'))
    r = project.run("plan", "--spec", path, "--state-dir", str(tmp_path / "elsewhere"))
    assert r.returncode == 2, r.stdout
    line = next(l for l in r.stdout.splitlines() if f"container.{project.name}-app: recreate" in l)
    assert "command changed" in line and "env.DB_PASSWORD not compared without the state" in line


# --- passphrases ----------------------------------------------------------------

def test_init_refuses_weak_and_overlong_passphrases(project, tmp_path):
    state = str(tmp_path / "state")
    r = project.run("init", "--state-dir", state, "--kdf", "interactive", stdin="x\nx\n")
    assert r.returncode == 1
    assert "too short (1 characters): use at least 12" in r.stderr
    r = project.run("init", "--state-dir", state, "--kdf", "interactive", stdin="aaaaaabbbbbbb\naaaaaabbbbbbb\n")
    assert r.returncode == 1 and "different" in r.stderr
    long = "correct horse " * 80  # 1120 bytes
    r = project.run("init", "--state-dir", state, "--kdf", "interactive", stdin=f"{long}\n{long}\n")
    assert r.returncode == 1 and "longer than 1024 bytes" in r.stderr and "refused rather than cut" in r.stderr
    r = project.run("init", "--state-dir", state, "--kdf", "interactive", stdin=PASS + "\n")
    assert r.returncode == 1 and "confirmed" in r.stderr
    r = project.run("init", "--state-dir", state, "--kdf", "interactive", stdin=f"{PASS}\n{PASS}!\n")
    assert r.returncode == 1 and "differ" in r.stderr
    r = project.run("init", "--state-dir", state, "--kdf", "interactive", stdin=f"{PASS}\n{PASS}\n")
    assert r.returncode == 0, r.stderr
    assert PASS not in r.stdout + r.stderr


def test_rekey_on_stdin_checks_the_confirmation(project, tmp_path):
    state = str(tmp_path / "state")
    r = project.run("init", "--state-dir", state, "--kdf", "interactive", stdin=f"{PASS}\n{PASS}\n")
    assert r.returncode == 0, r.stderr
    new = "a much better passphrase"
    r = project.run("rekey", "--state-dir", state, "--kdf", "interactive", stdin=f"{PASS}\n{new}\n{new}x\n")
    assert r.returncode == 1 and "the two passphrases differ" in r.stderr and "nothing was changed" in r.stderr
    r = project.run("rekey", "--state-dir", state, "--kdf", "interactive", stdin=f"{PASS}\n{new}\n{new}\n")
    assert r.returncode == 0, r.stderr
    # The old one no longer unlocks; the new one does.
    r = project.run("secret", "show", "db", "--state-dir", state, stdin=PASS + "\n")
    assert "wrong passphrase" in r.stderr
    r = project.run("secret", "show", "db", "--state-dir", state, stdin=new + "\n")
    assert "wrong passphrase" not in r.stderr and "no generated value" in r.stderr


# --- the CLI and the running daemon -------------------------------------------

def test_cli_and_running_daemon_never_converge_at_once(project, tmp_path):
    from test_daemon import Daemon, running
    d = Daemon(project, tmp_path)
    try:
        d.wait_notify("READY=1")
        cfg = str(d.config)
        # Changing commands refuse, saying who holds the state and what to do.
        r = project.run("apply", "--once", "--config", cfg, "--passphrase-file", d.passfile)
        assert r.returncode == 1
        assert f"a running daemon (`foundationd serve`, pid {d.proc.pid}) owns the state" in r.stderr
        assert "nothing was changed" in r.stderr and "systemctl stop foundationd" in r.stderr
        r = project.run("rekey", "--config", cfg, "--passphrase-file", d.passfile,
                        "--new-passphrase-file", d.passfile)
        assert r.returncode == 1 and "Stop it first" in r.stderr
        r = subprocess.run([project.bin, "serve", "--config", cfg], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "One daemon per state directory" in r.stderr
        # rotate goes through the daemon's API: refused while locked ...
        r = project.run("rotate", "app", "--config", cfg)
        assert r.returncode == 1 and "locked" in r.stderr and "unseal" in r.stderr
        r = project.run("unseal", "--config", cfg, "--passphrase-file", d.passfile)
        assert r.returncode == 0, r.stderr
        d.wait(lambda: running(project, "secretive"), "secretive after unseal")
        d.wait(lambda: d.request("GET", "/readyz")[0] == 200, "converged")
        before = project.container("secretive")
        old = dict(e.split("=", 1) for e in before["Config"]["Env"])["PASSWORD"]
        plain = project.container("plain")["Id"]
        # ... and done by it once unsealed: the consumer follows, nothing races.
        r = project.run("rotate", "app", "--config", cfg)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "credential.app.password: rotated (version 2)" in r.stdout
        assert "Converged" in r.stdout
        after = project.container("secretive")
        assert after["Id"] != before["Id"] and after["State"]["Running"]
        new = dict(e.split("=", 1) for e in after["Config"]["Env"])["PASSWORD"]
        assert new != old and len(new) == 32
        assert project.container("plain")["Id"] == plain
        r = project.run("rotate", "nope", "--config", cfg)
        assert r.returncode == 1 and 'no credential "nope"' in r.stderr
        log = d.output()
        assert "already in progress" not in log
        assert old not in log and new not in log
        # kill -9 leaves no stuck lock: a one-shot apply works at once.
        d.proc.kill()
        d.proc.wait()
        r = project.run("apply", "--once", "--config", cfg, "--passphrase-file", d.passfile)
        assert r.returncode == 0, r.stdout + r.stderr
        assert project.container("secretive")["Id"] == after["Id"]  # it holds version 2 already
    finally:
        d.stop()
