"""End-to-end: the forge's data section of `foundationd backup` with a real forge
(FOUNDATIOND_FORGEJO_IMAGE: Gitea standing in for Forgejo, SQLite inside its data
volume) and Debian's restic: commits pushed, a backup with the repositories and HEAD
commits in its manifest and the forge's freeze measured; the faults (restic failing in
the middle of the section, a read outlasting [backup] max_freeze, foundationd killed with
SIGKILL while the forge is frozen):
the forge is never left paused once a backup has run again, no half backup is listed as
complete; `backup verify` (the HEAD and `git fsck` in a scratch container); then restores
of one repository and of the whole data into a re-created
forge, refused over live data without --force, HEADs equal and `git fsck` clean."""
import base64
import json
import os
import re
import signal
import subprocess
import time

from conftest import docker, free_port, peer_image, wait_for
from test_forgejo import http_json

PASS = "forge backup passphrase, long enough"


def forge_paused(name):
    r = docker("inspect", "-f", "{{.State.Paused}} {{.State.Running}}", name, check=False)
    return r.stdout.split() if r.returncode == 0 else None


def test_forge_backup_faults_and_restores(project, tmp_path):
    image = peer_image("FOUNDATIOND_FORGEJO_IMAGE", "tests/peers/forgejo-image")
    port = free_port()
    state = str(tmp_path / "state")
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    repo_dir = str(tmp_path / "repo")
    (tmp_path / "VERSIONS").write_text(f'[images]\nbusybox = "{project.image}"\nforge = "{image}"\n')
    body = f"""
[credentials.forgejo-admin]
[credentials.forgejo-admin.fields]
password = {{ generate = "password", length = 24 }}

[volumes.@forgedata]
[containers.@forge]
image = "${{versions.forge}}"
ports = ["127.0.0.1:{port}:3000"]
volumes = ["@forgedata:/data"]
[containers.@forge.healthcheck]
test = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/api/healthz"]
interval = "1s"
timeout = "5s"
retries = 120

[forgejo]
container = "@forge"
url = "http://127.0.0.1:{port}"
[forgejo.admin]
username = "platform-admin"
email = "platform-AT-example.org"
password = "${{credentials.forgejo-admin.password}}"
[forgejo.orgs.olsitec]
[forgejo.repos."olsitec/foundation"]

[backup.local]
path = "{repo_dir}"
[backup.retention]
keep_daily = 1
"""
    text = (f'spec_version = 1\nproject = "{project.name}"\nversions = "VERSIONS"\n' + body) \
        .replace("@", project.name + "-").replace("-AT-", "@")
    spec = str(tmp_path / "foundation.toml")
    with open(spec, "w") as f:
        f.write(text)
    forge = f"{project.name}-forge"
    helper = forge + "-fd-backup"
    common = ["--spec", spec, "--state-dir", state, "--passphrase-file", str(passfile)]

    # restic wrappers that fail, or hang without reading, in the forge's section
    # (restic's environment is foundationd's explicit one: the fault is in the file).
    pidfile = tmp_path / "hung.pid"
    faults = {
        "fail": 'head -c 100000 >/dev/null; echo "Fatal: injected failure" >&2; exit 1',
        "hang": f"echo $$ > {pidfile}; exec sleep 600",
    }
    for name, action in faults.items():
        w = tmp_path / f"restic-{name}"
        w.write_text(f'#!/bin/sh\ncase "$*" in\n  *forge/data.tar*) {action};;\nesac\nexec restic "$@"\n')
        w.chmod(0o755)

    def fd(*args, fault=None):
        env = dict(os.environ, NO_COLOR="1")
        if fault:
            env["FOUNDATIOND_RESTIC"] = str(tmp_path / f"restic-{fault}")
        return subprocess.run([project.bin, *args], capture_output=True, text=True, env=env,
                              timeout=300)

    try:
        r = fd("init", "--state-dir", state, "--passphrase-file", str(passfile), "--kdf", "interactive")
        assert r.returncode == 0, r.stderr
        r = fd("apply", "--once", *common)
        assert r.returncode == 0, r.stdout + r.stderr
        pw = fd("secret", "show", "forgejo-admin.password", "--state-dir", state,
                "--passphrase-file", str(passfile)).stdout.strip()

        work = tmp_path / "work"
        work.mkdir()
        header = "Authorization: Basic " + base64.b64encode(f"platform-admin:{pw}".encode()).decode()
        genv = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
                    GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org",
                    GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", GIT_CONFIG_COUNT="1",
                    GIT_CONFIG_KEY_0="http.extraHeader", GIT_CONFIG_VALUE_0=header)
        remote = f"http://127.0.0.1:{port}/olsitec/foundation.git"

        def git(*args):
            g = subprocess.run(["git", *args], cwd=str(work), capture_output=True, text=True,
                               env=genv, timeout=120)
            assert g.returncode == 0, f"git {args}: {g.stdout}{g.stderr}"
            return g.stdout.strip()

        def remote_head():
            return git("ls-remote", remote, "refs/heads/main").split()[0]

        def commit(name, content):
            (work / name).write_bytes(content)
            git("add", "-A")
            git("commit", "-q", "-m", "add " + name)
            git("push", "-q", remote, "HEAD:refs/heads/main")
            return git("rev-parse", "HEAD")

        git("init", "-q", "-b", "main")
        commit("README", b"foundation\n")
        head = commit("blob.bin", os.urandom(256 * 1024))  # a tar larger than the pipes
        assert remote_head() == head

        # Fault 1: restic fails in the middle of the forge's section.
        r = fd("backup", *common, fault="fail")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "forge/data" in r.stderr, r.stderr
        assert forge_paused(forge) == ["false", "true"]
        assert docker("inspect", helper, check=False).returncode != 0  # the helper is gone

        # Fault 3: the read outlasts [backup] max_freeze (restic hangs without
        # reading): the forge is thawed at the limit, the hung restic killed,
        # the backup refused, the helper removed.
        limited = str(tmp_path / "limited.toml")
        with open(limited, "w") as f:
            f.write(text.replace("[backup.local]", '[backup]\nmax_freeze = "2s"\n[backup.local]'))
        lcommon = ["--spec", limited] + common[2:]
        r = fd("backup", *lcommon, fault="hang")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "frozen for the limit of 2s with the read still under way" in r.stderr, r.stderr
        assert "[backup] max_freeze (2s)" in r.stderr, r.stderr
        assert forge_paused(forge) == ["false", "true"]
        assert docker("inspect", helper, check=False).returncode != 0
        hung = int(pidfile.read_text())
        assert not os.path.exists(f"/proc/{hung}"), "the hung restic outlived the backup"
        pidfile.unlink()

        # Fault 2: foundationd killed with SIGKILL while the forge is frozen.
        env = dict(os.environ, NO_COLOR="1", FOUNDATIOND_RESTIC=str(tmp_path / "restic-hang"))
        proc = subprocess.Popen([project.bin, "backup", *common], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: forge_paused(forge) == ["true", "true"] and pidfile.exists(),
                     "the forge paused by the backup", timeout=60)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if pidfile.exists():
                try:
                    os.kill(int(pidfile.read_text()), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        assert forge_paused(forge) == ["true", "true"]  # what a killed backup leaves

        # The next backup succeeds: it unpauses the forge first.
        r = fd("backup", *common)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "was paused (an interrupted backup left it so): unpaused" in r.stdout, r.stdout
        assert "1 repositories, the forge paused" in r.stdout, r.stdout
        assert "retention: nothing to forget (1 complete backups kept)" in r.stdout, r.stdout
        assert forge_paused(forge) == ["false", "true"]
        assert docker("inspect", helper, check=False).returncode != 0
        r = fd("backup", "list", *common)
        assert r.returncode == 0, r.stderr
        assert f"1 repositories: olsitec/foundation@{head[:12]}; the forge paused " in r.stdout, r.stdout
        r = fd("backup", "list", "--json", *common)
        assert r.returncode == 0, r.stderr
        listed = json.loads(r.stdout)
        complete = [e for e in listed if e["complete"]]
        assert len(complete) == 1, listed  # neither faulted backup is listed complete
        sections = {s["name"]: s for s in complete[0]["manifest"]["sections"]}
        f = sections["forge/data"]
        assert f["repositories"] == {"olsitec/foundation": {
            "head": head, "path": "data/git/repositories/olsitec/foundation.git"}}
        assert f["mounts"] == ["/data"] and f["freeze_ms"] >= 0 and f["bytes"] > 256 * 1024
        # The section's own time, which holds its freeze (it was once left at 0 and
        # counted in the next section's).
        assert f["seconds"] > 0 and f["seconds"] * 1000 >= f["freeze_ms"], f
        assert not [n for n in complete[0]["manifest"]["not_included"] if n.startswith("forgejo")]
        backup_id = complete[0]["id"]

        # backup verify: the tar extracted into a scratch container of the forge's image
        # (no network at all), the HEAD equal to the manifest's, `git fsck` clean, and
        # nothing of it left afterwards.
        r = fd("backup", "verify", *common)
        assert r.returncode == 0, r.stdout + r.stderr
        assert re.search(r"^  forge/data +ok +1 repositories, HEAD commits equal to the manifest, "
                         r"git fsck clean", r.stdout, re.M), r.stdout
        label = f"label=foundationd.verify-project={project.name}"
        assert docker("ps", "-aq", "--filter", label).stdout.split() == []
        assert docker("network", "ls", "-q", "--filter", label).stdout.split() == []

        # One repository: a newer commit, refused without --force, restored with it.
        newer = commit("later", b"after the backup\n")
        r = fd("restore", "--section", "forge/repo/olsitec/foundation", *common)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "already hold the repository olsitec/foundation" in r.stderr, r.stderr
        assert "nothing was restored" in r.stderr
        assert remote_head() == newer
        r = fd("restore", "--section", "forge/repo/olsitec/foundation", "--force", *common)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "HEAD commits equal to the manifest" in r.stdout, r.stdout
        wait_for(lambda: http_json("GET", "127.0.0.1", port, "/api/healthz")[0] == 200,
                 "the forge back after the restore", timeout=90)
        assert remote_head() == head

        # The whole data: the forge and its volume lost, re-created empty by apply.
        docker("rm", "-f", forge)
        docker("volume", "rm", f"{project.name}-forgedata")
        r = fd("apply", "--once", *common)
        assert r.returncode == 0, r.stdout + r.stderr
        r = fd("restore", "--section", "forge/data", *common)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "already hold 1 repositories (olsitec/foundation)" in r.stderr, r.stderr
        r = fd("restore", "--section", "forge/data", "--backup", backup_id, "--force", *common)
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: http_json("GET", "127.0.0.1", port, "/api/healthz")[0] == 200,
                 "the forge back after the restore", timeout=90)
        assert remote_head() == head
        code, repo = http_json("GET", "127.0.0.1", port, "/api/v1/repos/olsitec/foundation",
                               "platform-admin", pw)
        assert code == 200, repo
        fsck = docker("exec", "-u", "git", forge, "git", "--git-dir",
                      "/data/git/repositories/olsitec/foundation.git", "fsck", "--strict")
        assert fsck.returncode == 0, fsck.stderr
        # And the forge converges from the restored data.
        r = fd("apply", "--once", *common)
        assert r.returncode == 0, r.stdout + r.stderr

        # Retention (keep_daily = 1): a second backup the same day drops the first
        # one whole (every section's snapshot), then prunes.
        r = fd("backup", *common)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"retention: forgot backup {backup_id}" in r.stdout, r.stdout
        assert "retention: pruned; 1 complete backups kept" in r.stdout, r.stdout
        listed = json.loads(fd("backup", "list", "--json", *common).stdout)
        # (an entry per fd-backup tag, incomplete ones too: none of the first is left)
        assert [e["complete"] for e in listed] == [True] and listed[0]["id"] != backup_id, listed
    finally:
        docker("rm", "-f", helper, check=False)
        if forge_paused(forge) and forge_paused(forge)[0] == "true":
            docker("unpause", forge, check=False)
