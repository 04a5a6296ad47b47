"""End-to-end: `foundationd backup verify` with a real PostgreSQL (test_backup.py's stack)
and Debian's restic. A backup with binary rows is restored into a scratch PostgreSQL of
the same image on one internal scratch network with nothing published (watched while
it runs), every table's row count compared with the manifest, and everything removed
afterwards; an incomplete backup is refused; a section that fails to restore and a
scratch server killed mid-way are reported failed, per section, and still cleaned up;
`backup list` shows never / verified / failed; the daemon reports the verification
(GET /v1/status, `status`, /metrics: the last verified time and the failures by
reason). A Vault on raft (real OpenBao): its snapshot restored into a scratch OpenBao of
the same image, unsealed with the keys of the backup's own state, the backup's canary read
back; a manifest whose canary differs is a mismatch, one without a canary (a backup taken
before canaries) verifies and says the canary was not checked; after a data-key rotation
the current state's keys are used, said so; nothing is left behind."""
import http.client
import json
import os
import re
import subprocess
import threading

from conftest import docker, free_port, peer_image, wait_for
from test_backup import FILL, PASS, Stack, pg_image, stack  # noqa: F401 (fixtures)


class ScratchWatcher:
    """Polls the Engine while a verify runs: every scratch container (its network mode,
    port bindings and volumes) and network (internal or not) it sees."""

    def __init__(self, project):
        self.label = f"foundationd.verify-project={project}"
        self.containers = {}
        self.networks = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def look(self):
        ids = docker("ps", "-aq", "--filter", "label=" + self.label, check=False).stdout.split()
        for i in ids:
            r = docker("inspect", i, check=False)
            if r.returncode != 0:
                continue
            c = json.loads(r.stdout)[0]
            self.containers[c["Name"].lstrip("/")] = {
                "network": c["HostConfig"].get("NetworkMode"),
                "bindings": c["HostConfig"].get("PortBindings") or {},
                "publish_all": c["HostConfig"].get("PublishAllPorts"),
                "ports": c["NetworkSettings"].get("Ports") or {},
                "volumes": [m["Name"] for m in c.get("Mounts", []) if m.get("Type") == "volume"],
                "labels": c["Config"].get("Labels") or {},
            }
        nets = docker("network", "ls", "-q", "--filter", "label=" + self.label,
                      check=False).stdout.split()
        for n in nets:
            r = docker("network", "inspect", n, check=False)
            if r.returncode == 0:
                d = json.loads(r.stdout)[0]
                self.networks[d["Name"]] = d["Internal"]

    def run(self):
        while not self.stop.is_set():
            self.look()
            self.stop.wait(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def leftovers(project):
    """Scratch resources of this project that still exist."""
    label = f"label=foundationd.verify-project={project}"
    left = docker("ps", "-aq", "--filter", label).stdout.split()
    left += docker("network", "ls", "-q", "--filter", label).stdout.split()
    return left


def wrapper(tmp_path, name, body):
    """A restic that runs `body` for some calls (restic's environment is foundationd's
    explicit one: the fault is in the file)."""
    w = tmp_path / f"restic-{name}"
    w.write_text("#!/bin/sh\n" + body + '\nexec restic "$@"\n')
    w.chmod(0o755)
    return str(w)


def test_verify_restores_compares_reports_and_cleans_up(stack, tmp_path):
    s = stack
    project = s.p.name

    def fd(*args, restic=None):
        env = dict(os.environ, NO_COLOR="1")
        if restic:
            env["FOUNDATIOND_RESTIC"] = restic
        return subprocess.run([s.p.bin, *args, "--spec", s.spec, "--state-dir", s.dir,
                               "--passphrase-file", s.passfile],
                              capture_output=True, text=True, env=env, timeout=600)

    r = s.p.run("init", "--state-dir", s.dir, "--passphrase-file", s.passfile,
                "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    r = fd("apply", "--once")
    assert r.returncode == 0, r.stdout + r.stderr
    s.sql(FILL)
    r = fd("backup")
    assert r.returncode == 0, r.stdout + r.stderr
    good = re.search(r"^backup (\S+) to ", r.stdout, re.M).group(1)

    # Never verified: said so.
    r = fd("backup", "list")
    assert r.returncode == 0, r.stderr
    assert re.search(rf"^{good}  complete .*VERIFIED: never$", r.stdout, re.M), r.stdout

    # An incomplete backup (restic fails on the state section) is refused by name.
    failing_state = wrapper(tmp_path, "state", 'case "$*" in\n  *" backup "*state/state.db*) '
                            'echo "Fatal: injected" >&2; exit 1;;\nesac')
    r = fd("backup", restic=failing_state)
    assert r.returncode == 1, r.stdout + r.stderr
    incomplete = re.search(r"^backup (\S+) to ", r.stdout, re.M).group(1)
    r = fd("backup", "verify", incomplete)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"backup {incomplete} is incomplete" in r.stderr, r.stderr
    assert leftovers(project) == []

    # The verify: the newest complete backup (not the incomplete one after it).
    with ScratchWatcher(project) as watch:
        r = fd("backup", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"verifying backup {good}" in r.stdout, r.stdout
    assert re.search(r"^  sections +ok .*SHA-256 equal to the manifest", r.stdout, re.M), r.stdout
    assert re.search(r"^  postgres/main +ok +globals and 2 databases restored; 2 tables, 507 rows, "
                     r"every row count equal to the manifest", r.stdout, re.M), r.stdout
    assert f"backup {good} verified" in r.stdout
    # What ran: one internal network, a scratch PostgreSQL on it, nothing published.
    assert len(watch.networks) == 1, watch.networks
    [(net, internal)] = watch.networks.items()
    assert internal is True
    assert net.startswith(f"fd-verify-{good}-"), net
    assert watch.containers, "no scratch container was seen"
    for name, c in watch.containers.items():
        assert name.startswith(net + "-"), name
        assert c["network"] == net, c
        assert c["bindings"] == {} and not c["publish_all"], c
        assert all(not v for v in c["ports"].values()), c
        assert c["labels"]["foundationd.verify"] == good, c
        assert "foundationd.project" not in c["labels"], c  # the converge never sees them
    assert leftovers(project) == []
    for c in watch.containers.values():
        for v in c["volumes"]:
            assert docker("volume", "inspect", v, check=False).returncode != 0, v
    # The live instance is untouched.
    assert s.sql("SELECT count(*) FROM items;") == "500"

    r = fd("backup", "list", "--json")
    assert r.returncode == 0, r.stderr
    listed = {e["id"]: e for e in json.loads(r.stdout)}
    assert listed[good]["verified"] == "verified"
    assert listed[incomplete]["verified"] == "never"
    assert listed[good]["verification"]["ok"] is True

    # A section that fails to restore: restic fails on the second read of appdb's dump
    # (the first is the SHA-256 check; the second feeds pg_restore in the scratch server).
    count = tmp_path / "dumps"
    failing_restore = wrapper(
        tmp_path, "restore",
        f'case "$*" in\n  *" dump "*db/appdb.dump*) echo x >> {count};'
        f' if [ "$(wc -l < {count})" -ge 2 ]; then echo "Fatal: injected" >&2; exit 1; fi;;\nesac')
    with ScratchWatcher(project) as watch:
        r = fd("backup", "verify", good, "--json", restic=failing_restore)
    assert r.returncode == 1, r.stdout + r.stderr
    rec = json.loads(r.stdout)
    assert rec["id"] == good and rec["ok"] is False and rec["reason"] == "restore", rec
    checks = {c["section"]: c for c in rec["checks"]}
    assert checks["sections"]["ok"] is True, rec
    assert checks["postgres/main"]["ok"] is False, rec
    assert "postgres/main/db/appdb" in checks["postgres/main"]["detail"], rec
    assert watch.containers and watch.networks, "the scratch server never ran"
    assert leftovers(project) == []
    r = fd("backup", "list")
    assert re.search(rf"^{good}  complete .*VERIFIED: failed: restore$", r.stdout, re.M), r.stdout

    # The scratch server killed mid-way: failed, cleaned up.
    killed = []

    def killer():
        for _ in range(3000):
            ids = docker("ps", "-q", "--filter", f"label=foundationd.verify-project={project}",
                         check=False).stdout.split()
            if ids:
                docker("kill", *ids, check=False)
                killed.extend(ids)
                return
            threading.Event().wait(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    r = fd("backup", "verify")
    t.join()
    assert killed, "no scratch container to kill was seen"
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"^  postgres/main +FAILED \(", r.stdout, re.M), r.stdout
    assert "backup verify: postgres/main: " in r.stderr, r.stderr
    assert leftovers(project) == []

    # The daemon reports it: the last complete backup's verification, the last one,
    # /metrics; a failure the CLI records while it runs is counted by reason.
    api_port = free_port()
    config = tmp_path / "foundationd.toml"
    config.write_text(
        f'state_dir = "{s.dir}"\n'
        f'[api]\nlisten = ["unix:{tmp_path}/api.sock", "tcp:127.0.0.1:{api_port}"]\n'
        f'token_file = "{tmp_path}/api-token"\n'
        f'[source]\nkind = "file"\npath = "{s.spec}"\n'
        '[reconcile]\nresync_interval = "1h"\n[unlock]\nkdf = "interactive"\n')
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

    def verification():
        b = json.loads(get("/v1/status"))["backup"]
        return b and b["verification"]

    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen([s.p.bin, "serve", "--config", str(config)], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: verification() is not None, "the daemon answering", output=output)
        r = s.p.run("unseal", "--config", str(config), "--passphrase-file", s.passfile)
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: verification()["last"] is not None, "the verification read from the state",
                 timeout=60, output=output)
        v = verification()
        assert v["last_complete"].startswith("failed: "), v
        assert v["last"]["id"] == good and v["last"]["ok"] is False and v["last"]["by"] == "cli", v
        assert v["last_verified"] is not None, v  # the successful one before
        metrics = get("/metrics")
        assert "foundationd_backup_last_verified_timestamp_seconds " in metrics, metrics
        assert 'foundationd_backup_verify_failures_total{reason="restore"} 0' in metrics, metrics

        count.unlink()
        r = fd("backup", "verify", restic=failing_restore)
        assert r.returncode == 1, r.stdout + r.stderr
        wait_for(lambda: 'foundationd_backup_verify_failures_total{reason="restore"} 1'
                 in get("/metrics"), "the failed verify counted", output=output)

        r = fd("backup", "verify")
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: verification()["last_complete"] == "verified",
                 "the verification reported", output=output)
        v = verification()
        assert v["last"]["ok"] is True and v["last"]["id"] == good, v
        r = s.p.run("status", "--config", str(config))
        assert f"verified: verified (last verify: passed of {good}" in r.stdout, r.stdout
        assert leftovers(project) == []
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


RAFT = """
ui            = false
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

VAULT_SPEC = """
[credentials.app-key]
vault_path = "app/key"
[credentials.app-key.fields]
token = { generate = "password", length = 24 }

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

[backup.local]
path = "REPO"
"""


def test_verify_restores_vault_into_a_scratch_openbao_and_reads_the_canary(project, tmp_path):
    bao_image = peer_image("FOUNDATIOND_OPENBAO_IMAGE", "tests/peers/openbao-image")
    name = project.name
    (tmp_path / "VERSIONS").write_text(f'[images]\nopenbao = "{bao_image}"\n')
    (tmp_path / "raft.hcl").write_text(RAFT)
    spec = project.write(VAULT_SPEC.replace("BAOPORT", str(free_port()))
                         .replace("REPO", str(tmp_path / "repo")))
    state = str(tmp_path / "state")
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")

    def fd(*args, restic=None):
        env = dict(os.environ, NO_COLOR="1")
        if restic:
            env["FOUNDATIOND_RESTIC"] = restic
        return subprocess.run([project.bin, *args, "--spec", spec, "--state-dir", state,
                               "--passphrase-file", str(passfile)],
                              capture_output=True, text=True, env=env, timeout=600)

    r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile),
                    "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    r = fd("apply", "--once")
    assert r.returncode == 0, r.stdout + r.stderr
    r = fd("backup")
    assert r.returncode == 0, r.stdout + r.stderr
    backup = re.search(r"^backup (\S+) to ", r.stdout, re.M).group(1)
    # The credential and the canary: 2 secrets under the mount.
    assert re.search(r"^vault: .*, 2 secrets under foundation/", r.stdout, re.M), r.stdout
    r = fd("secret", "show", "app-key.token")
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert len(secret) == 24

    # The verify: ok, with a scratch OpenBao on the internal network, nothing published.
    with ScratchWatcher(name) as watch:
        r = fd("backup", "verify", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rec = json.loads(r.stdout)
    checks = {c["section"]: c for c in rec["checks"]}
    assert rec["ok"] is True and rec["id"] == backup, rec
    vault = checks["vault"]
    assert vault["ok"] is True, rec
    assert "unsealed with the state's keys, 2 secrets under foundation/ as in the manifest" \
        in vault["detail"], vault
    assert "the canary foundationd/backup-canary equal to the manifest's" in vault["detail"], vault
    assert "[keys from the backup's own state]" in vault["detail"], vault
    assert not any(n.startswith("vault") for n in rec["not_checked"]), rec
    assert "vault: scratch OpenBao " in r.stderr and "restored into the scratch OpenBao" in r.stderr
    # No key, token or secret anywhere in what was printed.
    assert secret not in r.stdout + r.stderr
    [(net, internal)] = watch.networks.items()
    assert internal is True and net.startswith(f"fd-verify-{backup}-"), watch.networks
    assert list(watch.containers) == [net + "-vault"], watch.containers
    c = watch.containers[net + "-vault"]
    assert c["network"] == net and c["bindings"] == {} and not c["publish_all"], c
    assert all(not v for v in c["ports"].values()), c
    assert leftovers(name) == []
    for v in c["volumes"]:
        assert docker("volume", "inspect", v, check=False).returncode != 0, v
    # The live Vault is untouched (still unsealed: the next converge changes nothing).
    r = fd("apply", "--once")
    assert r.returncode == 0, r.stdout + r.stderr

    # A manifest whose canary is not the snapshot's: a mismatch, nothing left behind.
    zeros = "0" * 64
    other_canary = wrapper(
        tmp_path, "canary",
        'case "$*" in\n  *" dump "*manifest.json*) restic "$@" | sed -E '
        f"'/\"canary\": \\{{/,/\\}}/ s/[0-9a-f]{{64}}/{zeros}/'; exit $?;;\nesac")
    r = fd("backup", "verify", backup, "--json", restic=other_canary)
    assert r.returncode == 1, r.stdout + r.stderr
    rec = json.loads(r.stdout)
    checks = {c["section"]: c for c in rec["checks"]}
    assert rec["reason"] == "mismatch", rec
    assert checks["vault"]["ok"] is False, rec
    assert "the canary foundation/foundationd/backup-canary read back differs from the " \
        "manifest's" in checks["vault"]["detail"], rec
    assert leftovers(name) == []

    # A backup taken before canaries (its manifest has none): the snapshot restores and
    # unseals, the secrets are counted, and the canary is said not checked.
    no_canary = wrapper(
        tmp_path, "nocanary",
        'case "$*" in\n  *" dump "*manifest.json*) restic "$@" | sed -E '
        "'/\"canary\": \\{/,/\\}/d'; exit $?;;\nesac")
    r = fd("backup", "verify", backup, "--json", restic=no_canary)
    assert r.returncode == 0, r.stdout + r.stderr
    rec = json.loads(r.stdout)
    checks = {c["section"]: c for c in rec["checks"]}
    assert checks["vault"]["ok"] is True, rec
    assert "canary not checked: the backup has none" in checks["vault"]["detail"], rec
    assert any(n.startswith("vault canary: backup ") for n in rec["not_checked"]), rec
    assert leftovers(name) == []

    # A new data key since the backup: its state copy no longer opens with today's key, so
    # the current state's Vault keys (the same Vault's) unseal it, and the check says so.
    r = project.run("rekey", "--rotate-data-key", "--state-dir", state, "--passphrase-file",
                    str(passfile), "--new-passphrase-file", str(passfile), "--kdf", "interactive")
    assert r.returncode == 0, r.stdout + r.stderr
    r = fd("backup", "verify", backup, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rec = json.loads(r.stdout)
    checks = {c["section"]: c for c in rec["checks"]}
    assert checks["vault"]["ok"] is True, rec
    assert "the canary foundationd/backup-canary equal to the manifest's" in checks["vault"]["detail"]
    assert "[keys from the CURRENT state (the backup's own: " in checks["vault"]["detail"], rec
    assert leftovers(name) == []
