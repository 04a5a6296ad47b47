"""End-to-end: the README's first-run walkthrough, run command by command in
its order, so the docs cannot drift from the binary.

The commands are taken from the ```sh blocks of README.md's "First run"
section. Only what a test must not do to the host is rewritten: paths under
/etc, /var/lib, /srv, /root and /run/foundationd move into a temporary
directory, the ports into free ones, the image into the locally built test
image, and `systemctl enable --now foundationd` starts `foundationd serve`
(what the unit runs). `foundationd` is the binary under test; the config
comes from $FOUNDATIOND_CONFIG, as the README's commands give no --config. A
command is expected to exit 0, or the code its `# exit N` comment says;
`foundationd status` and `curl` are retried for a while (an operator re-runs
them while the daemon converges)."""
import os
import re
import shlex
import subprocess
import time

from conftest import docker, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASS = "walkthrough passphrase"


def walkthrough_blocks():
    text = open(os.path.join(ROOT, "README.md")).read()
    start = text.index("## First run")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", text[start:end], re.S)


def commands(block):
    """Each command of a block: a line, or a line with its here-document."""
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        m = re.search(r"<<'(\w+)'", line)
        if m:
            body = []
            while lines[i] != m.group(1):
                body.append(lines[i])
                i += 1
            i += 1
            yield "\n".join([line] + body + [m.group(1)])
        else:
            yield line


def test_readme_walkthrough(fd_bin, image, tmp_path):
    blocks = walkthrough_blocks()
    assert len(blocks) >= 6
    project = "hello"
    base = tmp_path / "host"
    for d in ("etc", "var/lib", "srv", "root", "run"):
        (base / d).mkdir(parents=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(fd_bin, bindir / "foundationd")
    http_port, api_port = free_port(), free_port()
    rewrites = [
        ("/etc/foundationd", f"{base}/etc/foundationd"),
        ("/var/lib/foundationd", f"{base}/var/lib/foundationd"),
        ("/srv/", f"{base}/srv/"),
        ("/root/", f"{base}/root/"),
        ("/run/foundationd/api.sock", f"{base}/run/api.sock"),
        ("18081", str(http_port)),
        ("9420", str(api_port)),
        ("docker.io/library/busybox:1.36", image),
    ]
    env = dict(os.environ, NO_COLOR="1", FOUNDATIOND_CONFIG=f"{base}/etc/foundationd/foundationd.toml",
               PATH=f"{bindir}:{os.environ['PATH']}", HOME=str(base / "root"))
    cwd = str(base)
    daemon = None
    log = open(tmp_path / "daemon.log", "w+")
    ran = []
    outputs = {}
    pushed = ""  # the commit of the last `git push`
    try:
        for block in blocks:
            for cmd in commands(block):
                for old, new in rewrites:
                    cmd = cmd.replace(old, new)
                ran.append(cmd)
                if cmd.startswith("cd "):
                    cwd = os.path.join(cwd, shlex.split(cmd)[1])
                    continue
                if cmd.startswith("systemctl enable --now foundationd"):
                    daemon = subprocess.Popen([fd_bin, "serve"], stdout=log, stderr=subprocess.STDOUT,
                                              env=env, cwd=cwd)
                    continue
                m = re.search(r"#\s*exit (\d+)", cmd)
                want = int(m.group(1)) if m else 0
                status = cmd.startswith("foundationd status")
                retry = status or cmd.startswith("curl")
                deadline = time.time() + (90 if retry else 0)
                while True:
                    r = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True,
                                       text=True, input=f"{PASS}\n{PASS}\n", timeout=300)
                    done = r.returncode == want
                    if done and status and pushed and want == 0:
                        # After a push: until the daemon has applied that commit.
                        done = re.search(pushed[:7] + r"\w* \(applied\)", r.stdout) is not None
                    if done or time.time() > deadline:
                        break
                    time.sleep(1)
                if cmd.startswith("git push"):
                    pushed = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, env=env,
                                            capture_output=True, text=True).stdout.strip()
                log.flush()
                log.seek(0)
                assert r.returncode == want, (
                    f"README walkthrough: `{cmd}` exited {r.returncode}, want {want}\n"
                    f"{r.stdout}\n{r.stderr}\n--- daemon ---\n{log.read()[-4000:]}")
                outputs.setdefault(cmd.split("#")[0].strip(), []).append(r.stdout + r.stderr)
        assert daemon is not None, "the walkthrough starts the daemon"
        # What the walkthrough promises: locked first, then unlocked and
        # converged, and the pushed change served.
        status = outputs["foundationd status"]
        assert "locked:     yes" in status[0]
        assert "locked:     no" in status[-1]
        curls = outputs[f"curl -fsS http://127.0.0.1:{http_port}/"]
        assert curls[0].strip() == "hello" and curls[-1].strip() == "hello again"
        assert "foundationd preflight" in " ".join(ran) and "foundationd init" in " ".join(ran)
        log.seek(0)
        assert PASS not in log.read()
    finally:
        if daemon and daemon.poll() is None:
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        log.close()
        ids = docker("ps", "-aq", "--filter", f"label=foundationd.project={project}").stdout.split()
        if ids:
            docker("rm", "-f", *ids, check=False)
        for kind in ("network", "volume"):
            for n in docker(kind, "ls", "-q", "--filter", f"label=foundationd.project={project}").stdout.split():
                docker(kind, "rm", n, check=False)
