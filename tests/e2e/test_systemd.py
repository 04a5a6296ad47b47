"""The Debian package under a real systemd: systemd as PID 1 in a container
(tests/peers/systemd-image), the host's Docker engine through its socket, the
.deb that scripts/package built installed with dpkg, and the unit enabled as
an operator would. One container, the steps in order (each builds on the one
before): install, boot locked, unseal over the socket, a container with a
numeric user reading its secret file under the unit's sandbox, the watchdog,
reload, stop, a reboot (locked), a reboot with a systemd credential
(unattended unseal), the exposure on the running system, the journal's
fields, then upgrade, remove and purge (the sealed state stays).

FOUNDATIOND_DEB names the .deb (scripts/test builds it), FOUNDATIOND_SYSTEMD_IMAGE
the image (tests/peers/systemd-image), FOUNDATIOND_TEST_IMAGE the busybox image.

The consumers' secret files are bind-mounted by the host's Docker engine from
the host's /run/foundationd/secrets/<container>/, so this test's one consumer
directory (a unique name) is shared with the systemd container at the same
path, owned by the container's foundationd user. Only that directory: systemd
chowns its RuntimeDirectory= (/run/foundationd) recursively at boot, which
must not reach other tests' files on the host.
"""
import json
import os
import re
import subprocess
import time
import uuid

import pytest

from conftest import _skip_allowed, docker, peer_image, wait_for

PASSPHRASE = "correct horse battery staple, systemd"
HOST_SECRETS = "/run/foundationd/secrets"


class Machine:
    """The systemd container."""

    def __init__(self, image, name):
        self.image = image
        self.name = name

    def boot(self):
        os.makedirs(self.secrets, mode=0o700, exist_ok=True)
        docker("run", "-d", "--name", self.name, "--hostname", "foundation",
               "--cgroupns=private", "--cap-add", "SYS_ADMIN",
               "--tmpfs", "/run", "--tmpfs", "/run/lock", "--stop-signal", "SIGRTMIN+3",
               "-v", "/var/run/docker.sock:/var/run/docker.sock",
               "-v", f"{self.secrets}:{self.secrets}",
               self.image, "/bin/sh", "-c", "mount --make-rshared / && exec /sbin/init")
        self.wait_booted()

    def wait_booted(self):
        def up():
            r = self.sh("systemctl is-system-running", check=False)
            return r.stdout.strip() in ("running", "degraded")
        wait_for(up, "systemd to boot", timeout=60, output=self.journal)

    def sh(self, script, check=True, user=None, stdin=None, timeout=120):
        cmd = ["docker", "exec", "-i", self.name]
        if user:
            cmd += ["runuser", "-u", user, "--"]
        cmd += ["/bin/sh", "-c", script]
        r = subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"`{script}` exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r

    def show(self, prop):
        return self.sh(f"systemctl show -P {prop} foundationd.service").stdout.strip()

    def journal(self, since=None):
        extra = f" --since=@{since:.0f}" if since else ""
        return self.sh("journalctl -u foundationd --no-pager -o short-iso" + extra,
                       check=False).stdout

    def events(self, event, since=None):
        """The journal records of foundationd with EVENT=event (JSON objects)."""
        extra = f" --since=@{since:.0f}" if since else ""
        out = self.sh(f"journalctl -u foundationd -o json --no-pager EVENT={event}" + extra,
                      check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def status_json(self):
        r = self.sh("foundationd status --json", check=False)
        assert r.stdout, r.stderr
        return json.loads(r.stdout)

    def wait_active(self, what):
        wait_for(lambda: self.show("ActiveState") == "active", what, timeout=90,
                 output=self.journal)

    def reboot(self):
        docker("restart", "-t", "60", self.name)
        self.wait_booted()


@pytest.fixture(scope="module")
def machine():
    image = peer_image("FOUNDATIOND_SYSTEMD_IMAGE", "tests/peers/systemd-image")
    deb = os.environ.get("FOUNDATIOND_DEB")
    if not deb or not os.path.exists(deb):
        if _skip_allowed():
            pytest.skip("FOUNDATIOND_DEB not set")
        pytest.fail("FOUNDATIOND_DEB must name the .deb scripts/package builds (scripts/test sets it)")
    busybox = peer_image("FOUNDATIOND_TEST_IMAGE", "tests/peers/busybox-image")
    tag = uuid.uuid4().hex[:8]
    m = Machine(image, f"fd-systemd-{tag}")
    m.project = f"fd-sd-{tag}"
    m.secrets = f"{HOST_SECRETS}/{m.project}-app"
    m.busybox = busybox
    m.deb = deb
    m.boot()
    try:
        yield m
    finally:
        docker("rm", "-f", "-v", m.name, check=False)
        ids = docker("ps", "-aq", "--filter", f"label=foundationd.project={m.project}").stdout.split()
        if ids:
            docker("rm", "-f", *ids, check=False)
        for kind in ("network", "volume"):
            names = docker(kind, "ls", "-q", "--filter",
                           f"label=foundationd.project={m.project}").stdout.split()
            for n in names:
                docker(kind, "rm", n, check=False)
        subprocess.run(["rm", "-rf", m.secrets], check=False)


SPEC = """spec_version = 1
project = "{project}"
versions = "VERSIONS"

[credentials.app]
[credentials.app.fields]
token = {{ generate = "hex", bytes = 16 }}

# Needs no secret: converged while locked.
[containers.{project}-web]
image = "${{versions.busybox}}"
command = ["sleep", "3600"]
stop_timeout = "1s"

# A numeric user reading its secret file (mode 0400, owned by 1000:1000).
[containers.{project}-app]
image = "${{versions.busybox}}"
user = "1000:1000"
command = ["sh", "-c", "cat /run/secrets/token >/dev/null && exec sleep 3600"]
secret_files = {{ "/run/secrets/token" = "${{credentials.app.token}}" }}
stop_timeout = "1s"
"""


def host_container(name):
    r = docker("inspect", name, check=False)
    return json.loads(r.stdout)[0] if r.returncode == 0 else None


def running(name):
    c = host_container(name)
    return bool(c and c["State"]["Running"])


def test_packaged_binary_has_debian_hardening(tmp_path):
    """The binary in the .deb carries Debian's hardening (hardening=+all):
    fortified libc calls, the stack protector, PIE, full RELRO (BIND_NOW)."""
    deb = os.environ.get("FOUNDATIOND_DEB")
    if not deb or not os.path.exists(deb):
        if _skip_allowed():
            pytest.skip("FOUNDATIOND_DEB not set")
        pytest.fail("FOUNDATIOND_DEB must name the .deb scripts/package builds (scripts/test sets it)")
    subprocess.run(["dpkg-deb", "-x", deb, str(tmp_path)], check=True)
    binary = str(tmp_path / "usr" / "bin" / "foundationd")

    def readelf(*args):
        return subprocess.run(["readelf", "-W", *args, binary], check=True,
                              capture_output=True, text=True).stdout

    header = readelf("-h")
    assert re.search(r"Type:\s+DYN", header), header  # PIE
    assert "GNU_RELRO" in readelf("-l")
    dynamic = readelf("-d")
    assert re.search(r"\(FLAGS\)\s+.*BIND_NOW", dynamic) or \
        re.search(r"\(FLAGS_1\)\s+.*NOW", dynamic), dynamic
    symbols = readelf("--dyn-syms")
    assert "__stack_chk_fail" in symbols
    fortified = sorted(set(re.findall(r"(__\w+_chk)@", symbols)) - {"__stack_chk_fail"})
    assert fortified, "no fortified libc call (_FORTIFY_SOURCE) in the packaged binary"


class TestInstalledUnderSystemd:
    def test_install_creates_user_and_dirs_and_starts_nothing(self, machine):
        m = machine
        docker("cp", m.deb, f"{m.name}:/tmp/foundationd.deb")
        # The unit's SupplementaryGroups=docker: the socket's group, by id.
        gid = m.sh("stat -c %g /var/run/docker.sock").stdout.strip()
        m.sh(f"getent group docker >/dev/null || groupadd -o -g {gid} docker")
        r = m.sh("dpkg -i /tmp/foundationd.deb")
        assert "installed, not started" in r.stdout + r.stderr
        assert m.sh("id -nG foundationd").stdout.split() == ["foundationd"]
        # The shared consumer directory belongs to the daemon's user (by id).
        uid = int(m.sh("id -u foundationd").stdout)
        gid = int(m.sh("id -g foundationd").stdout)
        os.chown(m.secrets, uid, gid)
        assert m.sh("stat -c '%U:%G %a' /var/lib/foundationd").stdout.strip() == \
            "foundationd:foundationd 700"
        assert m.sh("stat -c '%U:%G %a' /etc/foundationd").stdout.strip() == "root:foundationd 750"
        assert m.sh("test -f /usr/share/man/man8/foundationd.8.gz", check=False).returncode == 0
        assert m.sh("dpkg-query -W -f='${Conffiles}' foundationd").stdout.strip().startswith(
            "/etc/foundationd/foundationd.toml")
        assert m.show("UnitFileState") == "disabled"
        assert m.show("ActiveState") == "inactive"
        assert m.sh("pgrep -x foundationd", check=False).returncode == 1

    def test_boot_is_active_after_ready_locked_and_converges_what_needs_no_secret(self, machine):
        m = machine
        m.sh("mkdir -p /srv/foundation")
        m.sh(f"cat >/srv/foundation/VERSIONS <<'EOF'\n[images]\nbusybox = \"{m.busybox}\"\nEOF")
        m.sh("cat >/srv/foundation/foundation.toml", stdin=SPEC.format(project=m.project))
        # The shipped config's defaults read /srv/foundation/foundation.toml;
        # only the KDF is made cheap for the test.
        m.sh("sed -i 's/^#kdf = \"moderate\"/kdf = \"interactive\"/' /etc/foundationd/foundationd.toml")
        r = m.sh("foundationd init", user="foundationd", stdin=f"{PASSPHRASE}\n{PASSPHRASE}\n")
        assert "Initialised the state in /var/lib/foundationd" in r.stdout
        m.sh("systemctl enable --now foundationd")  # returns once READY=1 arrived (Type=notify)
        assert m.show("Type") == "notify"
        assert m.show("ActiveState") == "active"
        # Active only after READY=1: the daemon logged api.listening (before
        # its READY=1) after systemd started it and before systemd called it
        # active.
        started = int(m.show("ExecMainStartTimestampMonotonic"))
        active = int(m.show("ActiveEnterTimestampMonotonic"))
        listening = [int(e["__MONOTONIC_TIMESTAMP"]) for e in m.events("api.listening")]
        assert listening and started < min(listening) < active
        status = m.sh("systemctl status --no-pager foundationd", check=False).stdout
        assert 'Status: "locked: waiting for passphrase' in status, status
        wait_for(lambda: running(f"{m.project}-web"), "the web container (needs no secret)",
                 timeout=90, output=m.journal)
        assert host_container(f"{m.project}-app") is None
        s = m.status_json()
        assert s["locked"] is True
        # The API token the unit created: root:foundationd 0640.
        assert m.sh("stat -c '%U:%G %a' /etc/foundationd/api-token").stdout.strip() == \
            "root:foundationd 640"

    def test_unseal_over_the_socket_by_a_group_member_converges(self, machine):
        m = machine
        m.sh("useradd --create-home --groups foundationd alice && useradd --create-home bob")
        # bob (not in the group) cannot reach the socket: the config itself is
        # unreadable to him, so he names one with the defaults.
        m.sh("printf '' >/tmp/defaults.toml && chmod 644 /tmp/defaults.toml")
        r = m.sh("foundationd status --config /tmp/defaults.toml", user="bob", check=False)
        assert r.returncode != 0
        assert "ermission denied" in r.stdout + r.stderr, r.stdout + r.stderr
        r = m.sh("foundationd unseal", user="bob", check=False, stdin=PASSPHRASE + "\n")
        assert r.returncode != 0
        assert m.status_json()["locked"] is True

        r = m.sh("foundationd unseal", user="alice", stdin=PASSPHRASE + "\n", check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: running(f"{m.project}-app"), "the app container after the unseal",
                 timeout=90, output=m.journal)
        assert m.status_json()["locked"] is False
        # Defect 7: under the unit's sandbox (CAP_CHOWN only), the file is owned
        # by the container's numeric user, who reads it.
        r = docker("exec", f"{m.project}-app", "cat", "/run/secrets/token", check=False)
        assert re.fullmatch(r"[0-9a-f]{32}", r.stdout), (r.stdout, r.stderr, m.journal())
        owner = docker("exec", f"{m.project}-app", "stat", "-c", "%u:%g %a",
                       "/run/secrets/token").stdout.strip()
        assert owner == "1000:1000 400"
        assert docker("exec", f"{m.project}-app", "id", "-u").stdout.strip() == "1000"

    def test_watchdog_kills_a_stopped_daemon_and_it_comes_back_locked(self, machine):
        m = machine
        # The shipped WatchdogSec=30s, RestartSec=5s, shortened for the test
        # by a drop-in (the sandbox and everything else stay as shipped).
        m.sh("mkdir -p /etc/systemd/system/foundationd.service.d && "
             "printf '[Service]\\nWatchdogSec=4s\\nRestartSec=1s\\n' "
             ">/etc/systemd/system/foundationd.service.d/test-watchdog.conf && "
             "systemctl daemon-reload && systemctl restart foundationd")
        restarts = int(m.show("NRestarts"))
        pid = m.show("MainPID")
        m.sh(f"kill -STOP {pid}")
        wait_for(lambda: int(m.show("NRestarts")) == restarts + 1
                 and m.show("ActiveState") == "active" and m.show("MainPID") != pid,
                 "systemd's watchdog to restart the stopped daemon", timeout=60, output=m.journal)
        assert m.show("MainPID") != pid
        assert "Watchdog timeout" in m.journal()
        assert m.status_json()["locked"] is True
        r = m.sh("foundationd unseal", user="alice", stdin=PASSPHRASE + "\n", check=False)
        assert r.returncode == 0, r.stdout + r.stderr

    def test_reload_rereads_the_config(self, machine):
        m = machine
        pid = m.show("MainPID")
        before = time.time() - 1
        m.sh("sed -i 's/^#resync_interval = \"60s\"/resync_interval = \"45s\"/' "
             "/etc/foundationd/foundationd.toml")
        m.sh("systemctl reload foundationd")  # returns after RELOADING=1 ... READY=1
        assert m.show("ActiveState") == "active" and m.show("MainPID") == pid
        applied = [e for e in m.events("config.reload", since=before) if e.get("RESULT") == "applied"]
        assert applied, m.journal(since=before)
        assert m.status_json()["locked"] is False  # a reload keeps the key

    def test_stop_is_quick_and_clean(self, machine):
        m = machine
        before = time.time() - 1
        t0 = time.monotonic()
        m.sh("systemctl stop foundationd")
        took = time.monotonic() - t0
        print(f"systemctl stop took {took:.2f}s (TimeoutStopSec=120s)")
        assert took < 30
        assert m.show("ActiveState") == "inactive"
        assert m.show("Result") == "success"
        assert m.events("serve.stopping", since=before) and m.events("serve.stopped", since=before)

    def test_reboot_starts_locked(self, machine):
        m = machine
        m.reboot()
        m.wait_active("foundationd to start at boot")
        assert m.status_json()["locked"] is True
        assert 'Status: "locked: waiting for passphrase' in \
            m.sh("systemctl status --no-pager foundationd", check=False).stdout

    def test_reboot_with_a_credential_unseals_by_itself(self, machine):
        m = machine
        m.sh("umask 077; printf '%s\\n' \"$P\" >/root/pass && "
             "systemd-creds encrypt --with-key=host --name=passphrase /root/pass "
             "/etc/foundationd/passphrase.cred && rm /root/pass".replace("$P", PASSPHRASE))
        m.sh("printf '[Service]\\nLoadCredentialEncrypted=passphrase:/etc/foundationd/passphrase.cred\\n' "
             ">/etc/systemd/system/foundationd.service.d/credential.conf")
        docker("rm", "-f", f"{m.project}-app")  # drift that needs the secret to repair
        m.reboot()
        m.wait_active("foundationd to start at boot with its credential")
        wait_for(lambda: not m.status_json()["locked"], "the unattended unseal", timeout=60,
                 output=m.journal)
        wait_for(lambda: running(f"{m.project}-app"), "the app container repaired unattended",
                 timeout=90, output=m.journal)
        assert [e for e in m.events("unseal.credential") if e.get("RESULT") == "unlocked"], m.journal()
        # It keeps running: it read its secret file (owned by its user).
        started = host_container(f"{m.project}-app")["State"]["StartedAt"]
        time.sleep(3)
        c = host_container(f"{m.project}-app")
        logs = docker("logs", f"{m.project}-app", check=False)
        assert c["State"]["Running"] and c["State"]["StartedAt"] == started, \
            (logs.stderr[-300:], m.journal()[-3000:])

    def test_exposure_on_the_running_system(self, machine):
        m = machine
        out = m.sh("systemd-analyze security --no-pager foundationd.service", check=False).stdout
        score = re.search(r"Overall exposure level for foundationd.service: ([0-9.]+)", out)
        assert score, out
        print(f"systemd-analyze security (running): {score.group(1)}")
        assert float(score.group(1)) <= 2.0, out
        # No core file of the key-holding process (the unit's LimitCORE=0,
        # beside the daemon's own PR_SET_DUMPABLE 0).
        pid = m.show("MainPID")
        assert m.show("LimitCORE") == "0"
        limits = m.sh(f"cat /proc/{pid}/limits").stdout
        assert re.search(r"^Max core file size\s+0\s+0\s", limits, re.M), limits

    def test_journal_has_structured_fields(self, machine):
        m = machine
        done = m.events("apply.done")
        assert done, m.journal()
        e = done[-1]
        assert e["SYSLOG_IDENTIFIER"] == "foundationd"
        assert e["RESOURCE"].startswith("container.")
        assert e["ACTION"] and e["PRIORITY"] == "6"
        assert e["MESSAGE"].startswith("event=apply.done ")

    def test_upgrade_restarts_remove_stops_purge_keeps_the_state(self, machine):
        m = machine
        pid = m.show("MainPID")
        docker("cp", m.deb, f"{m.name}:/root/foundationd.deb")  # /tmp was emptied at boot
        m.sh("dpkg -i /root/foundationd.deb")  # the same version again: configure with $2 set
        m.wait_active("foundationd after the upgrade")
        assert m.show("MainPID") != pid
        r = m.sh("dpkg -r foundationd")
        assert m.show("ActiveState") in ("inactive", "")
        assert m.sh("pgrep -x foundationd", check=False).returncode == 1
        r = m.sh("dpkg -P foundationd")
        assert "stays in /var/lib/foundationd" in r.stdout + r.stderr
        assert m.sh("test -s /var/lib/foundationd/state.db", check=False).returncode == 0
        assert m.sh("test -e /etc/foundationd/api-token", check=False).returncode == 1
