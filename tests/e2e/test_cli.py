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
