"""End-to-end: `foundationd preflight` on this host, against the real Docker
engine: a port held by another process fails with what to do, the same port
held by the spec's own container passes, a bad Docker socket fails."""
import re
import socket
import subprocess

from conftest import free_port


SPEC = """
[containers.@web]
image = "${versions.busybox}"
command = ["sh", "-c", "mkdir -p /www; echo hi > /www/index.html; exec httpd -f -p 8080 -h /www"]
ports = ["127.0.0.1:@PORT:8080"]
stop_timeout = "1s"
"""


def lines(out):
    return {m.group(2): (m.group(1), m.group(3))
            for m in re.finditer(r"^(pass|warn|fail|skip)  ([^:]+(?::\d+/\w+)?): (.*)$", out, re.M)}


def write(project, tmp_path, port):
    spec = project.write(SPEC.replace("@PORT", str(port)))
    state = tmp_path / "state"
    cfg = tmp_path / "foundationd.toml"
    cfg.write_text(f'state_dir = "{state}"\n[source]\nkind = "file"\npath = "{spec}"\n')
    return spec, str(cfg), str(state)


def test_preflight_reports_each_check_and_what_to_do(project, tmp_path):
    port = free_port()
    spec, cfg, state = write(project, tmp_path, port)
    label = f"port 127.0.0.1:{port}/tcp"

    # A process foundationd does not manage holds the port.
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", port))
    squatter.listen(1)
    try:
        r = project.run("preflight", "--config", cfg)
    finally:
        squatter.close()
    assert r.returncode == 1, r.stdout + r.stderr
    found = lines(r.stdout)
    assert found[label][0] == "fail", r.stdout
    assert "does not manage" in found[label][1]
    assert f"-> find it with `ss -lntup 'sport = :{port}'`" in r.stdout
    assert found["docker"][0] == "pass" and "API" in found["docker"][1]
    assert found["docker socket"][0] == "pass"
    assert found["spec"][0] == "pass" and project.name in found["spec"][1]
    assert found["state directory"][0] == "warn"  # not created yet: says `foundationd init`
    assert "foundationd init" in r.stdout
    for name in ("disk", "clock", "secret files"):
        assert name in found, r.stdout
    assert re.search(r"^preflight: \d+ passed, \d+ warning\(s\), 1 failed", r.stdout, re.M)

    # Free, then held by its own container: both pass.
    r = project.run("preflight", "--config", cfg)
    assert lines(r.stdout)[label][0] == "pass", r.stdout
    r = project.run("apply", "--once", "--config", cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    r = project.run("preflight", "--config", cfg)
    found = lines(r.stdout)
    assert found[label] == ("pass", f"held by its own container {project.name}-web (running)"), r.stdout

    # The state directory with a mode that lets others in fails, and says how to fix it.
    r = project.run("init", "--state-dir", state, "--kdf", "interactive",
                    stdin="preflight passphrase\npreflight passphrase\n")
    assert r.returncode == 0, r.stderr
    subprocess.run(["chmod", "755", state], check=True)
    r = project.run("preflight", "--config", cfg)
    found = lines(r.stdout)
    assert found["state directory"][0] == "fail" and f"-> `chmod 700 {state}`" in r.stdout
    assert r.returncode == 1


def test_preflight_without_docker_fails_with_what_to_do(project, tmp_path):
    spec, cfg, state = write(project, tmp_path, free_port())
    with open(cfg, "a") as f:
        f.write(f'[docker]\nsocket = "{tmp_path}/no-docker.sock"\n')
    r = project.run("preflight", "--config", cfg)
    assert r.returncode == 1
    found = lines(r.stdout)
    assert found["docker socket"][0] == "fail"
    assert "systemctl start docker" in r.stdout
