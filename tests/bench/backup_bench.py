#!/usr/bin/env python3
"""Backup and restore benchmark (docs/dr.md "Figures"): foundationd against the raw floor.

One project with the three data services of a foundation, filled with SIZE MiB of
incompressible data (neither pg_dump's, git's nor restic's compression can shrink it),
split between them (--split PG:FORGE:S3, default 1:1:1):

  postgres        a real PostgreSQL (tests/peers/postgres-image), rows of 256 KiB (md5 of
                  random(), hex-decoded) in one database
  forge           the forge (FOUNDATIOND_FORGEJO_IMAGE: Gitea standing in for Forgejo, SQLite
                  in its data volume), REPOS repositories ([forgejo.repos.*], created by
                  foundationd through the forge's API), commits of 4 MiB random files pushed
                  with git over HTTP (16 MiB per push)
  bucket          an S3 server (FOUNDATIOND_S3_IMAGE: SeaweedFS) of [s3.main] and one bucket
                  of [buckets.*], objects of 4 MiB random bytes put with curl's own SigV4

[backup.local] and [backup.offsite] are two directories of this host (the offsite one stands
for another host). With --offsite-mbit N the offsite is instead an S3 server (the same image)
in a container of its own outside the project, reached at its container address through a
link shaped to N Mbit/s each way (`tc ... tbf` on both ends of its veth pair): the offsite
copy of each backup and the rebuild's restore then pay a real link's bandwidth, and the
rebuild's figure is a recovery time over that link. Every run (RUNS, the figures are the medians) then does, in order:

  floors          on the same bytes, in the same run: `pg_dump -Fc` of the database through
                  `docker exec` into a file; for each data volume (PostgreSQL's, the forge's,
                  the S3 server's) `tar c` of it into a file, then `tar x` of that file into a
                  new volume (the bytes read and written once each, nothing else)
  backup          `foundationd backup --json`: per section (postgres/NAME/globals,
                  postgres/NAME/db/DB, forge/data, buckets/NAME, state) its size from the
                  run's record and its time from when its progress line arrived on stderr
                  (the record's own "seconds" printed beside); after the sections, the
                  manifest and the retention (the default: 7 daily), then `restic copy`
                  offsite, split the same way; the forge's freeze from the backup's manifest
                  (`backup list --json`: forge/data's freeze_ms, the time its container is
                  paused during the cut)
  restore         the three data containers and their volumes destroyed, `apply --once`
                  re-creates them empty (timed apart), then one `foundationd restore --section
                  NAME` per section of the backup (each checks the repository and reads its
                  section back before writing); forge/data with --force, since apply created
                  the repositories anew; the state into a file beside the state (removed
                  after). Rows (count, MD5), every repository's HEAD and every object (key,
                  size, MD5 ETag) compared with what was put in
  rebuild         from nothing: every container, volume and network of the project, the
                  state directory and the secret files gone; the local repository moved out
                  of reach (and back afterwards, so that the next run's backup is incremental
                  as on a living host). dr/restore-to-fresh-host (restore --from-recovery of
                  the recovery bundle exported after the first backup, from the offsite directory; then
                  apply --once) timed as one, against the sum of every volume's tar c + tar x,
                  and split by when its lines arrive (the bundle opened and the state in
                  place; the data services started alone and restored; apply); the data
                  compared again

Then FREEZE_SAMPLES more backups, each after one small commit (64 KiB, on a branch of its own)
pushed to the first repository, give the forge's freeze its p50 and p95 together with the
runs' backups (nearest rank: with 13 samples, p95 is the largest); each backup's freeze is
listed too, beside its forge/data section's time and the whole command's.

Prints a table of figures and ratios. It is a benchmark: it checks the data comes back, it
asserts nothing about time. The state and the recovery bundle use the `interactive` KDF: a
real host's default (`moderate`) adds its unlock time to every command. Images are present
already (a fresh host would pull them first: not counted). Everything it creates (containers,
volumes, networks of its project, the floors' scratch volumes, the temporary directory, the
secret files) is removed at the end, on failure too.

  FOUNDATIOND_POSTGRES_IMAGE=<image> FOUNDATIOND_FORGEJO_IMAGE=<image> \\
  FOUNDATIOND_S3_IMAGE=<image> tests/bench/backup_bench.py --bin build/daemon/foundationd \\
      [--size-mib 1024] [--runs 3] [--freeze-samples 10] [--repos 2] [--split 1:1:1]
Needs a Docker engine, Debian's restic, git, curl (--aws-sigv4), root (the secret files
under /run/foundationd/secrets), the PostgreSQL, forge and SeaweedFS test images
(FOUNDATIOND_POSTGRES_IMAGE, FOUNDATIOND_FORGEJO_IMAGE, FOUNDATIOND_S3_IMAGE; when unset,
built by the recipes under tests/peers/).
"""
import argparse
import base64
import hashlib
import html
import http.client
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from conftest import free_port  # noqa: E402

PROJECT = "bench-backup"
BENCH_LABEL = f"foundationd.bench={PROJECT}"  # the floors' scratch containers and volumes
PASS = "correct horse battery staple"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG, FORGE, S3 = f"{PROJECT}-pg", f"{PROJECT}-forge", f"{PROJECT}-s3"
VOLUMES = {"postgres": f"{PROJECT}-pgdata", "forge": f"{PROJECT}-forgedata",
           "bucket": f"{PROJECT}-s3data"}
BUCKET = f"{PROJECT}-objects"
OFFSITE = f"{PROJECT}-offsite"  # --offsite-mbit's S3 server: not the project's, survives it
ORG = "bench"
ADMIN = "platform-admin"
CHUNK = 4 * 1048576  # one file of a commit, one object


def sh(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"bench: {' '.join(cmd)} failed with {r.returncode}")
    return r


def timed(cmd, **kw):
    t0 = time.perf_counter()
    r = sh(cmd, **kw)
    return time.perf_counter() - t0, r


def run_stamped(cmd, env=None):
    """Runs `cmd`; returns (seconds, stdout text, [(seconds since the start, line)] of its
    stdout, the same of its stderr): when each progress line arrived."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = [], []

    def pump(stream, into):
        for line in stream:
            into.append((time.perf_counter() - t0, line.rstrip("\n")))

    threads = [threading.Thread(target=pump, args=(p.stdout, out)),
               threading.Thread(target=pump, args=(p.stderr, err))]
    for t in threads:
        t.start()
    rc = p.wait()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    if rc != 0:
        sys.stderr.write("\n".join(line for _, line in out + err) + "\n")
        raise SystemExit(f"bench: {' '.join(cmd)} failed with {rc}")
    return took, "\n".join(line for _, line in out), out, err


def secret_dirs():
    root = "/run/foundationd/secrets"
    return [os.path.join(root, n) for n in (os.listdir(root) if os.path.isdir(root) else [])
            if n.startswith(PROJECT + "-")]


def destroy_project():
    """Every container, volume and network of the project, and its secret files."""
    for label in (f"foundationd.project={PROJECT}", BENCH_LABEL,
                  f"foundationd.backup-helper={FORGE}"):
        ids = sh(["docker", "ps", "-aq", "--filter", f"label={label}"]).stdout.split()
        if ids:
            sh(["docker", "rm", "-f", "-v", *ids], check=False)
    for kind in ("volume", "network"):
        for label in (f"foundationd.project={PROJECT}", BENCH_LABEL):
            names = sh(["docker", kind, "ls", "-q", "--filter", f"label={label}"]).stdout.split()
            if names:
                sh(["docker", kind, "rm", *names], check=False)
    subprocess.run(["rm", "-rf", *secret_dirs()], check=False)


def clean():
    destroy_project()
    sh(["docker", "rm", "-f", "-v", OFFSITE], check=False)
    for v in [*VOLUMES.values(), f"{PROJECT}-floor"]:
        sh(["docker", "volume", "rm", v], check=False)
    sh(["docker", "network", "rm", f"{PROJECT}-net"], check=False)


def shape(pid, mbit):
    """Both directions of a container's link to N Mbit/s: its eth0's egress (what it sends:
    a restore's download) inside its network namespace, and the host end of its veth pair's
    egress (what it receives: an offsite copy's upload). The host end is found by the index
    `ip link` gives after eth0's "@if" in the namespace (not /sys, which stays the host's
    under nsenter -n), and must be a veth: never shape another of the host's links."""
    tbf = ["tbf", "rate", f"{mbit}mbit", "burst", "64kb", "latency", "200ms"]
    ns = ["nsenter", "-t", str(pid), "-n"]
    inside = sh([*ns, "ip", "-o", "link", "show", "eth0"]).stdout
    m = re.search(r"eth0@if(\d+):", inside)
    if not m:
        raise SystemExit(f"bench: {OFFSITE}'s eth0 is not one end of a veth pair: {inside[:80]}")
    sh([*ns, "tc", "qdisc", "replace", "dev", "eth0", "root", *tbf])
    for line in sh(["ip", "-o", "link"]).stdout.splitlines():
        index, name = (x.strip() for x in line.split(":")[:2])
        if index == m.group(1):
            host_end = name.split("@")[0]
            if not host_end.startswith("veth"):
                raise SystemExit(f"bench: link {index} of the host is {host_end}, not a veth")
            sh(["tc", "qdisc", "replace", "dev", host_end, "root", *tbf])
            return
    raise SystemExit(f"bench: the host end of {OFFSITE}'s veth pair (index {m.group(1)}) not found")


def start_offsite(image, mbit):
    """The offsite host: an S3 server in a container of its own (no project label: the
    rebuild's loss leaves it), its own key pair, its link shaped. Returns (url, keys)."""
    keys = (os.urandom(10).hex(), base64.b64encode(os.urandom(30)).decode())
    sh(["docker", "run", "-d", "--name", OFFSITE, "-e", f"AWS_ACCESS_KEY_ID={keys[0]}",
        "-e", f"AWS_SECRET_ACCESS_KEY={keys[1]}", image])
    info = json.loads(sh(["docker", "inspect", OFFSITE]).stdout)[0]
    url = f"http://{info['NetworkSettings']['IPAddress']}:9000"
    shape(info["State"]["Pid"], mbit)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 60:  # listening: any HTTP answer
        if sh(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url], check=False).stdout not in ("", "000"):
            return url, keys
        time.sleep(0.2)
    raise SystemExit(f"bench: the offsite S3 server {OFFSITE} did not answer at {url}")


def peer(env, recipe):
    return os.environ.get(env) or sh([os.path.join(ROOT, "tests", "peers", recipe)]).stdout.strip()


def write_spec(d, images, repos, forge_port, s3_port, offsite_url=None):
    offsite_toml = f'[backup.offsite]\npath = "{d}/offsite"\n'
    if offsite_url:
        offsite_toml = (f'[credentials.offsite]\n[credentials.offsite.fields]\n'
                        f'key = {{ provided = true }}\nsecret = {{ provided = true }}\n\n'
                        f'[backup.offsite]\nrepository = "s3:{offsite_url}/offsite/foundation"\n'
                        f'access_key = "${{credentials.offsite.key}}"\n'
                        f'secret_key = "${{credentials.offsite.secret}}"\n')
    specdir = os.path.join(d, "spec")
    os.makedirs(specdir)
    with open(os.path.join(specdir, "VERSIONS"), "w") as f:
        f.write("[images]\n" + "".join(f'{k} = "{v}"\n' for k, v in images.items()))
    repo_tables = "".join(f'[forgejo.repos."{r}"]\n' for r in repos)
    spec = os.path.join(specdir, "foundation.toml")
    with open(spec, "w") as f:
        f.write(f"""spec_version = 1
project = "{PROJECT}"
versions = "VERSIONS"

[credentials.pg-super]
[credentials.pg-super.fields]
password = {{ generate = "password", length = 24 }}

[networks.{PROJECT}-net]
[volumes.{VOLUMES["postgres"]}]

[containers.{PG}]
image = "${{versions.postgres}}"
networks = ["{PROJECT}-net"]
volumes = ["{VOLUMES["postgres"]}:/var/lib/postgresql/data"]
env = {{ POSTGRES_PASSWORD_FILE = "/run/secrets/pg-super" }}
secret_files = {{ "/run/secrets/pg-super" = "${{credentials.pg-super.password}}" }}
healthcheck = {{ test = ["CMD-SHELL", "pg_isready -U postgres -q"], interval = "1s", timeout = "3s", retries = 120 }}
stop_timeout = "30s"

[postgres.bench]
container = "{PG}"
superuser = "postgres"
[postgres.bench.databases.benchdb]
owner = "postgres"

[credentials.forgejo-admin]
[credentials.forgejo-admin.fields]
password = {{ generate = "password", length = 24 }}

[volumes.{VOLUMES["forge"]}]
[containers.{FORGE}]
image = "${{versions.forge}}"
ports = ["127.0.0.1:{forge_port}:3000"]
volumes = ["{VOLUMES["forge"]}:/data"]
stop_timeout = "5s"
[containers.{FORGE}.healthcheck]
test = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/api/healthz"]
interval = "1s"
timeout = "5s"
retries = 120

[forgejo]
container = "{FORGE}"
url = "http://127.0.0.1:{forge_port}"
[forgejo.admin]
username = "{ADMIN}"
email = "platform@example.org"
password = "${{credentials.forgejo-admin.password}}"
[forgejo.orgs.{ORG}]
{repo_tables}
[credentials.s3-root]
[credentials.s3-root.fields]
accessKey = {{ generate = "hex", bytes = 10 }}
secretKey = {{ generate = "password", length = 40 }}

[volumes.{VOLUMES["bucket"]}]
[containers.{S3}]
image = "${{versions.seaweedfs}}"
env = {{ AWS_ACCESS_KEY_ID = "${{credentials.s3-root.accessKey}}", AWS_SECRET_ACCESS_KEY = "${{credentials.s3-root.secretKey}}" }}
volumes = ["{VOLUMES["bucket"]}:/data"]
ports = ["127.0.0.1:{s3_port}:9000"]
stop_timeout = "2s"

[s3.main]
container = "{S3}"
endpoint = "http://127.0.0.1:{s3_port}"
region = "us-east-1"
access_key = "${{credentials.s3-root.accessKey}}"
secret_key = "${{credentials.s3-root.secretKey}}"

[buckets.{BUCKET}]
s3 = "main"

[backup]
recovery = "dr/recovery.sealed"
[backup.local]
path = "{d}/repo"
{offsite_toml}""")
    return specdir, spec


# --- the data ------------------------------------------------------------------------------

def psql(sql, db="benchdb"):
    return sh(["docker", "exec", "-i", "-u", "postgres", PG, "psql", "-X", "-q", "-At",
               "-v", "ON_ERROR_STOP=1", "-d", db], input=sql).stdout.strip()


def fill_postgres(size_mib):
    # 256 KiB of random bytes per row: 16384 md5 digests (16 bytes each once decoded).
    psql("CREATE TABLE blobs (id int PRIMARY KEY, body bytea NOT NULL);")
    rows = size_mib * 4
    step = 64
    for start in range(0, rows, step):
        psql(f"""INSERT INTO blobs SELECT i, decode(x.h, 'hex')
                 FROM generate_series({start + 1}, {min(start + step, rows)}) i,
                 LATERAL (SELECT string_agg(md5(random()::text || i || g), '') h
                          FROM generate_series(1, 16384) g) x;""")
    return int(psql("SELECT pg_database_size('benchdb');"))


def pg_fingerprint():
    return psql("SELECT count(*) || ':' || md5(string_agg(md5(body), '' ORDER BY id)) FROM blobs;")


class Forge:
    def __init__(self, port, password, work):
        self.port = port
        self.work = work
        header = "Authorization: Basic " + base64.b64encode(f"{ADMIN}:{password}".encode()).decode()
        self.env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.org",
                        GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.org",
                        GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", GIT_CONFIG_COUNT="1",
                        GIT_CONFIG_KEY_0="http.extraHeader", GIT_CONFIG_VALUE_0=header)

    def git(self, *args, cwd):
        r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=self.env)
        if r.returncode != 0:
            raise SystemExit(f"bench: git {' '.join(args)}: {r.stdout}{r.stderr}")
        return r.stdout.strip()

    def url(self, repo):
        return f"http://127.0.0.1:{self.port}/{repo}.git"

    def fill(self, repo, size_mib):
        """Commits of 4 MiB random files, pushed every 16 MiB. Returns the HEAD pushed."""
        src = tempfile.mkdtemp(prefix="src-", dir=self.work)
        try:
            self.git("init", "-q", "-b", "main", src, cwd=self.work)
            left, n, pending = size_mib * 1048576, 0, 0
            while left > 0:
                size = min(CHUNK, left)
                with open(os.path.join(src, f"blob-{n:05}.bin"), "wb") as f:
                    f.write(os.urandom(size))
                left -= size
                n += 1
                pending += size
                if pending >= 4 * CHUNK or left == 0:
                    self.git("add", "-A", cwd=src)
                    self.git("commit", "-q", "-m", f"{n} files", cwd=src)
                    self.git("push", "-q", self.url(repo), "HEAD:refs/heads/main", cwd=src)
                    pending = 0
            return self.git("rev-parse", "HEAD", cwd=src)
        finally:
            shutil.rmtree(src, ignore_errors=True)

    def push_small(self, repo, branch):
        """One commit of 64 KiB on a branch of its own (no history needed)."""
        src = tempfile.mkdtemp(prefix="small-", dir=self.work)
        try:
            self.git("init", "-q", "-b", branch, src, cwd=self.work)
            with open(os.path.join(src, "small.bin"), "wb") as f:
                f.write(os.urandom(64 * 1024))
            self.git("add", "-A", cwd=src)
            self.git("commit", "-q", "-m", branch, cwd=src)
            self.git("push", "-q", self.url(repo), f"HEAD:refs/heads/{branch}", cwd=src)
        finally:
            shutil.rmtree(src, ignore_errors=True)

    def heads(self, repos):
        return {r: self.git("ls-remote", self.url(r), "refs/heads/main", cwd=self.work).split()[:1]
                for r in repos}

    def wait_healthy(self, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/api/healthz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit("bench: the forge does not answer /api/healthz")


class Bucket:
    """Objects of the bucket, each request signed by curl's own SigV4 (not foundationd's
    code), the key pair in a curl config file (not argv)."""

    def __init__(self, port, keys, work):
        self.port = port
        self.work = work
        self.cfg = os.path.join(work, "curl.cfg")
        with open(self.cfg, "w") as f:
            f.write(f'user = "{keys[0]}:{keys[1]}"\n')
        os.chmod(self.cfg, 0o600)

    def request(self, url, payload_sha, extra):
        out = os.path.join(self.work, "curl.out")
        r = sh(["curl", "-sS", "-K", self.cfg, "--aws-sigv4", "aws:amz:us-east-1:s3",
                "--path-as-is", "-H", f"x-amz-content-sha256: {payload_sha}",
                "-w", "%{http_code}", "-o", out, *extra, url])
        with open(out, "rb") as f:
            body = f.read()
        os.unlink(out)
        return int(r.stdout), body

    def fill(self, size_mib):
        """Objects of 4 MiB random bytes. Returns {key: (size, MD5)}."""
        put = {}
        left, n = size_mib * 1048576, 0
        path = os.path.join(self.work, "object.bin")
        while left > 0:
            size = min(CHUNK, left)
            data = os.urandom(size)
            with open(path, "wb") as f:
                f.write(data)
            key = f"blobs/{n:05}.bin"
            code, body = self.request(f"http://127.0.0.1:{self.port}/{BUCKET}/{key}",
                                      hashlib.sha256(data).hexdigest(), ["-T", path])
            if code != 200:
                raise SystemExit(f"bench: PUT {key}: HTTP {code} {body[:300]!r}")
            put[key] = (size, hashlib.md5(data).hexdigest())
            left -= size
            n += 1
        os.unlink(path)
        return put

    def contents(self):
        """{key: (size, ETag)} of every object, as the server lists them."""
        got, token = {}, None
        empty = hashlib.sha256(b"").hexdigest()
        while True:
            query = "list-type=2" + (f"&continuation-token={urllib.parse.quote(token, safe='')}"
                                     if token else "")
            code, body = self.request(f"http://127.0.0.1:{self.port}/{BUCKET}?{query}", empty,
                                      ["-X", "GET"])
            if code != 200:
                raise SystemExit(f"bench: listing {BUCKET}: HTTP {code} {body[:300]!r}")
            text = body.decode()
            for part in text.split("<Contents>")[1:]:
                key = html.unescape(part.split("<Key>")[1].split("</Key>")[0])
                size = int(part.split("<Size>")[1].split("</Size>")[0])
                etag = html.unescape(part.split("<ETag>")[1].split("</ETag>")[0]).strip('"')
                got[key] = (size, etag)
            if "<IsTruncated>true</IsTruncated>" not in text:
                return got
            token = html.unescape(text.split("<NextContinuationToken>")[1]
                                  .split("</NextContinuationToken>")[0])


# --- the figures ---------------------------------------------------------------------------

def fsynced_into(path, cmd, ok_codes=(0,)):
    with open(path, "wb") as out:
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, stdout=out).returncode
        if rc not in ok_codes:
            raise subprocess.CalledProcessError(rc, cmd)
        out.flush()
        os.fsync(out.fileno())
        return time.perf_counter() - t0


def floors(d, tar_image, fig):
    """pg_dump into a file; tar c / tar x of every data volume."""
    dump = os.path.join(d, "floor.dump")
    fig["floor_dump"].append(fsynced_into(dump, ["docker", "exec", "-u", "postgres", PG, "pg_dump",
                                                 "-Fc", "-d", "benchdb"]))
    sizes = {"dump": os.path.getsize(dump)}
    os.unlink(dump)
    for what, vol in VOLUMES.items():
        tarball = os.path.join(d, "floor.tar")
        # The volumes are live (PostgreSQL writes its own files while it runs):
        # GNU tar's 1 ("file changed as we read it") still read every byte.
        fig[f"floor_c_{what}"].append(fsynced_into(tarball, [
            "docker", "run", "--rm", "--label", BENCH_LABEL, "-v", f"{vol}:/d:ro", tar_image,
            "tar", "--warning=no-file-changed", "-c", "-f", "-", "-C", "/d", "."], ok_codes=(0, 1)))
        sizes[what] = os.path.getsize(tarball)
        sh(["docker", "volume", "create", "--label", BENCH_LABEL, f"{PROJECT}-floor"])
        with open(tarball, "rb") as inp:
            t0 = time.perf_counter()
            subprocess.run(["docker", "run", "--rm", "-i", "--label", BENCH_LABEL, "-v",
                            f"{PROJECT}-floor:/d", tar_image, "sh", "-c", "tar xf - -C /d && sync"],
                           stdin=inp, check=True)
            fig[f"floor_x_{what}"].append(time.perf_counter() - t0)
        os.unlink(tarball)
        sh(["docker", "volume", "rm", f"{PROJECT}-floor"])
    return sizes


def first_at(lines, prefix, last=False):
    hits = [t for t, line in lines if line.startswith(prefix)]
    return (hits[-1] if last else hits[0]) if hits else None


def backup(fd, common, fig, sections, freezes):
    took, out, _, err = run_stamped([fd, "backup", "--json", *common])
    rec = json.loads(out)
    if not rec["ok"] or rec["offsite"] != "confirmed":
        raise SystemExit(f"bench: the backup is not complete and copied offsite: {rec}")
    # After the sections (the state's is the last), the manifest and the retention, then
    # the offsite copy: from when their progress lines arrived.
    t_state = first_at(err, "state: ")
    t_ret = first_at(err, "retention:", last=True) or t_state
    t_off = first_at(err, "offsite: ", last=True)
    # Each section from when the line of the one before it (or of the start) arrived to
    # when its own did: what the record's "seconds" mean, taken from outside (the record
    # has 0 for forge/data and counts its time in the next section's).
    t_prev = t_prev_start = first_at(err, "backup ")
    took_sections = {}
    for s in rec["sections"]:
        t = first_at(err, s["name"] + ": ", last=True)
        took_sections[s["name"]] = t - t_prev
        t_prev = t
    if fig is not None:
        fig["backup"].append(took)
        fig["backup_sections"].append(sum(took_sections.values()))
        fig["backup_retention"].append(t_ret - t_state)
        fig["backup_offsite"].append(t_off - t_ret)
        fig["backup_rest"].append(took - (t_off - t_prev_start))
        for s in rec["sections"]:
            x = sections.setdefault(s["name"], {"backup": [], "record": [], "bytes": [],
                                                "restore": []})
            x["backup"].append(took_sections[s["name"]])
            x["record"].append(s["seconds"])
            x["bytes"].append(s["bytes"])
    # The forge's freeze, as the backup's manifest records it.
    listed = json.loads(sh([fd, "backup", "list", "--json", *common]).stdout)
    entry = next(e for e in listed if e["id"] == rec["id"])
    forge = next(s for s in entry["manifest"]["sections"] if s["name"] == "forge/data")
    freezes.append((forge["freeze_ms"], took_sections["forge/data"], took))
    return rec


RESTORE_ORDER = ("postgres/", "buckets/", "forge/", "state")  # restore's own order


def restore_sections(fd, common, state, rec, fig, sections):
    """The data services lost and re-created empty, then each section restored alone."""
    for c in (PG, FORGE, S3):
        sh(["docker", "rm", "-f", c])
    for v in VOLUMES.values():
        sh(["docker", "volume", "rm", v])
    took, _ = timed([fd, "apply", "--once", *common])
    fig["recreate"].append(took)
    names = [s["name"] for s in rec["sections"]]
    names.sort(key=lambda n: next(i for i, p in enumerate(RESTORE_ORDER) if n.startswith(p)))
    total = 0.0
    for name in names:
        force = ["--force"] if name == "forge/data" else []
        took, _ = timed([fd, "restore", "--section", name, *force, *common])
        sections[name]["restore"].append(took)
        total += took
        if name == "state":
            for n in os.listdir(state):
                if n.startswith("state.db.restored-"):
                    os.unlink(os.path.join(state, n))
    fig["restore"].append(total)


def rebuild(fd, d, specdir, state, passfile, fig):
    """Everything lost but the spec checkout, the passphrase and the offsite directory; then
    dr/restore-to-fresh-host."""
    local, aside = os.path.join(d, "repo"), os.path.join(d, "repo.aside")
    os.rename(local, aside)
    try:
        destroy_project()
        shutil.rmtree(state)
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "NO_COLOR": "1",
               "FOUNDATIOND_BIN": fd}
        took, _, out, _ = run_stamped([os.path.join(ROOT, "dr", "restore-to-fresh-host"),
                                       "--state-dir", state, "--passphrase-file", passfile,
                                       specdir], env=env)
    finally:
        if os.path.exists(local):
            shutil.rmtree(local)
        os.rename(aside, local)
    t1 = first_at(out, "restore-to-fresh-host: 1/2")
    t_data = first_at(out, "starting the data services alone")
    t2 = first_at(out, "restore-to-fresh-host: 2/2")
    fig["rebuild"].append(took)
    fig["rebuild_state"].append(t_data - t1)
    fig["rebuild_data"].append(t2 - t_data)
    fig["rebuild_apply"].append(took - t2)


def percentile(xs, p):
    """Nearest rank."""
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--size-mib", type=int, default=1024,
                    help="the dataset, split between rows, repositories and objects (MiB)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--freeze-samples", type=int, default=10,
                    help="extra backups for the forge's freeze p50/p95")
    ap.add_argument("--repos", type=int, default=2, help="forge repositories")
    ap.add_argument("--split", default="1:1:1", help="PG:FORGE:S3 shares of --size-mib")
    ap.add_argument("--offsite-mbit", type=int, default=0,
                    help="the offsite an S3 server behind a link of this many Mbit/s each way "
                         "(0: a directory of this host)")
    args = ap.parse_args()
    if args.runs < 1 or args.repos < 1 or args.freeze_samples < 0:
        ap.error("--runs and --repos are at least 1, --freeze-samples at least 0")
    shares = [int(x) for x in args.split.split(":")]
    if len(shares) != 3 or min(shares) < 1:
        ap.error("--split is three positive integers, PG:FORGE:S3")
    pg_mib = max(1, args.size_mib * shares[0] // sum(shares))
    forge_mib = max(args.repos, args.size_mib * shares[1] // sum(shares))
    s3_mib = max(1, args.size_mib - pg_mib - forge_mib)

    fd = os.path.abspath(args.bin)
    images = {"postgres": peer("FOUNDATIOND_POSTGRES_IMAGE", "postgres-image"),
              "forge": peer("FOUNDATIOND_FORGEJO_IMAGE", "forgejo-image"),
              "seaweedfs": peer("FOUNDATIOND_S3_IMAGE", "seaweedfs-image")}
    repos = [f"{ORG}/repo-{i + 1}" for i in range(args.repos)]
    d = tempfile.mkdtemp(prefix="fd-backup-bench-")
    work = os.path.join(d, "work")
    os.makedirs(work)
    state = os.path.join(d, "state")
    passfile = os.path.join(d, "pass")
    with open(passfile, "w") as f:
        f.write(PASS + "\n")
    forge_port, s3_port = free_port(), free_port()
    clean()
    try:
        offsite_url, offsite_keys = (start_offsite(images["seaweedfs"], args.offsite_mbit)
                                     if args.offsite_mbit else (None, None))
        specdir, spec = write_spec(d, images, repos, forge_port, s3_port, offsite_url)
        common = ["--spec", spec, "--state-dir", state, "--passphrase-file", passfile]
        sh([fd, "init", "--state-dir", state, "--passphrase-file", passfile,
            "--kdf", "interactive"])
        if offsite_keys:
            for field, value in zip(("key", "secret"), offsite_keys):
                sh([fd, "secret", "set", f"offsite.{field}", *common], input=value)
        sh([fd, "apply", "--once", *common])

        def secret(field):
            return sh([fd, "secret", "show", field, *common]).stdout.rstrip("\n")

        forge = Forge(forge_port, secret("forgejo-admin.password"), work)
        bucket = Bucket(s3_port, (secret("s3-root.accessKey"), secret("s3-root.secretKey")), work)

        print(f"filling {args.size_mib} MiB of incompressible data: {pg_mib} MiB of rows, "
              f"{forge_mib} MiB in {args.repos} repositories, {s3_mib} MiB of objects...",
              flush=True)
        t0 = time.perf_counter()
        db_bytes = fill_postgres(pg_mib)
        rows = pg_fingerprint()
        t1 = time.perf_counter()
        heads = {r: [forge.fill(r, forge_mib // args.repos + (i < forge_mib % args.repos))]
                 for i, r in enumerate(repos)}
        t2 = time.perf_counter()
        put = bucket.fill(s3_mib)
        t3 = time.perf_counter()
        # What the server lists is what later listings are compared with: each key and size
        # as put, and its ETag (the MD5 of the content for a single PUT).
        objects = bucket.contents()
        if objects != put:
            raise SystemExit(f"bench: the bucket does not list what was put: "
                             f"{sorted(objects.items())[:3]} ... against {sorted(put.items())[:3]}")
        print(f"  rows: {db_bytes / 1048576:.0f} MiB on disk in {t1 - t0:.0f} s; repositories "
              f"pushed in {t2 - t1:.0f} s; {len(objects)} objects put in {t3 - t2:.0f} s",
              flush=True)

        def check_data(when):
            if pg_fingerprint() != rows:
                raise SystemExit(f"bench: {when}: the rows differ")
            forge.wait_healthy()
            if forge.heads(repos) != heads:
                raise SystemExit(f"bench: {when}: the repositories' HEADs differ")
            got = bucket.contents()
            if got != objects:
                raise SystemExit(f"bench: {when}: the bucket differs ({len(got)} objects, "
                                 f"{len(objects)} put)")

        fig = {k: [] for k in (
            "floor_dump", "floor_c_postgres", "floor_x_postgres", "floor_c_forge", "floor_x_forge",
            "floor_c_bucket", "floor_x_bucket", "backup", "backup_sections", "backup_retention",
            "backup_offsite", "backup_rest", "recreate", "restore", "rebuild", "rebuild_state",
            "rebuild_data", "rebuild_apply")}
        sections, freezes, sizes = {}, [], {}
        for run in range(args.runs):
            sizes = floors(d, images["postgres"], fig)
            rec = backup(fd, common, fig, sections, freezes)
            if run == 0:
                sh([fd, "backup", "export-recovery", "--kdf", "interactive", *common])
            restore_sections(fd, common, state, rec, fig, sections)
            check_data(f"run {run + 1}, after the restore")
            rebuild(fd, d, specdir, state, passfile, fig)
            check_data(f"run {run + 1}, after the rebuild")
            print(f"  run {run + 1}/{args.runs} done", flush=True)
        for i in range(args.freeze_samples):
            forge.push_small(repos[0], f"sample-{i + 1}")
            backup(fd, common, None, sections, freezes)
        if args.freeze_samples:
            print(f"  {args.freeze_samples} freeze samples done", flush=True)

        report(args, fig, sections, freezes, sizes, db_bytes, len(objects))
    finally:
        clean()
        shutil.rmtree(d, ignore_errors=True)


def report(args, fig, sections, freezes, sizes, db_bytes, n_objects):
    med = {k: statistics.median(v) for k, v in fig.items() if v}
    mib = 1048576
    where = (f"an S3 server over a link shaped to {args.offsite_mbit} Mbit/s each way"
             if args.offsite_mbit else "a directory of this host")
    print(f"\nbackup bench: the offsite target {where}")
    print(f"backup bench: {args.size_mib} MiB of incompressible data, median of {args.runs} "
          f"runs:\n  PostgreSQL database {db_bytes / mib:.0f} MiB on disk (pg_dump -Fc "
          f"{sizes['dump'] / mib:.0f} MiB); the forge's volume {sizes['forge'] / mib:.0f} MiB "
          f"({args.repos} repositories);\n  the S3 server's volume {sizes['bucket'] / mib:.0f} MiB "
          f"({n_objects} objects)\n")

    def ratio(a, b):
        return f"{a / b:6.2f}x" if a is not None and b else "      -"

    def num(x, fmt="9.2f"):
        return format(x, fmt) if x is not None else " " * (int(fmt.split(".")[0]) - 1) + "-"

    floor_of = {"postgres/bench/db/benchdb": ("floor_dump", "floor_x_postgres"),
                "forge/data": ("floor_c_forge", "floor_x_forge"),
                f"buckets/{BUCKET}": ("floor_c_bucket", "floor_x_bucket")}
    print("  per section, seconds: backup (from when its progress line arrived; `record`: the "
          "run's record), restore (one `restore --section` each)")
    print(f"  {'section':30} {'MiB':>7} {'backup':>8} {'record':>8} {'MiB/s':>7} {'floor':>8}"
          f" {'ratio':>7} {'restore':>8} {'floor':>8} {'ratio':>7}")
    for name in sorted(sections, key=lambda n: next(i for i, p in enumerate(RESTORE_ORDER)
                                                    if n.startswith(p))):
        s = sections[name]
        b = statistics.median(s["backup"])
        nbytes = statistics.median(s["bytes"])
        r = statistics.median(s["restore"]) if s["restore"] else None
        fb, fr = (med[k] for k in floor_of[name]) if name in floor_of else (None, None)
        print(f"  {name:30} {nbytes / mib:7.1f} {b:8.2f} {statistics.median(s['record']):8.2f}"
              f" {nbytes / mib / b if b else 0:7.1f} {num(fb, '8.2f')} {ratio(b, fb)}"
              f" {num(r, '8.2f')} {num(fr, '8.2f')} {ratio(r, fr)}")
    print("  each `restore --section` unlocks the state, runs restic check and lists the backups "
          "first:\n  the state's row (a few hundred KiB) is about that fixed cost\n"
          "  floors: the database against pg_dump -Fc into a file (backup) and tar x of its "
          "volume (restore);\n  forge/data and the bucket against tar c (backup) and tar x "
          "(restore) of the forge's and the S3 server's volume\n")

    backup_floor = med["floor_dump"] + med["floor_c_forge"] + med["floor_c_bucket"]
    restore_floor = med["floor_x_postgres"] + med["floor_x_forge"] + med["floor_x_bucket"]
    rebuild_floor = sum(med[f"floor_{cx}_{w}"] for cx in "cx" for w in VOLUMES)
    total = sum(statistics.median(s["bytes"]) for s in sections.values())  # every section
    rows = [
        ("floor: pg_dump -Fc into a file", med["floor_dump"], sizes["dump"], None),
        ("floor: tar c, PostgreSQL's volume", med["floor_c_postgres"], sizes["postgres"], None),
        ("floor: tar x, PostgreSQL's volume", med["floor_x_postgres"], sizes["postgres"], None),
        ("floor: tar c, the forge's volume", med["floor_c_forge"], sizes["forge"], None),
        ("floor: tar x, the forge's volume", med["floor_x_forge"], sizes["forge"], None),
        ("floor: tar c, the S3 server's volume", med["floor_c_bucket"], sizes["bucket"], None),
        ("floor: tar x, the S3 server's volume", med["floor_x_bucket"], sizes["bucket"], None),
        ("backup: every section into restic (local)", med["backup_sections"], total, None),
        ("backup: manifest, retention", med["backup_retention"], None, None),
        ("backup: restic copy to the offsite target", med["backup_offsite"], None, None),
        ("backup: unlock, repository opened, exit", med["backup_rest"], None, None),
        ("backup: whole command", med["backup"], total, backup_floor),
        ("restore: apply --once re-creates them empty", med["recreate"], None, None),
        ("restore: every section, one at a time", med["restore"], total, restore_floor),
        ("rebuild: the bundle opened, the state in place", med["rebuild_state"], None, None),
        ("rebuild: data services started and restored", med["rebuild_data"], None, None),
        ("rebuild: apply --once", med["rebuild_apply"], None, None),
        ("rebuild: dr/restore-to-fresh-host, whole", med["rebuild"], total, rebuild_floor),
    ]
    if args.offsite_mbit:
        link = total * 8 / (args.offsite_mbit * 1e6)
        rows += [
            (f"floor: the sections' bytes over {args.offsite_mbit} Mbit/s", link, total, None),
            ("rebuild against tar c + tar x + that transfer", med["rebuild"], total,
             rebuild_floor + link),
        ]
    print(f"  {'phase':46} {'seconds':>9} {'MiB/s':>8} {'ratio':>7}")
    for name, secs, nbytes, floor in rows:
        rate = f"{nbytes / mib / secs:8.1f}" if nbytes and secs else "       -"
        print(f"  {name:46} {secs:9.2f} {rate} {ratio(secs, floor)}")
    print("  ratios: the whole backup against pg_dump + tar c of the forge's and the S3 server's "
          "volumes;\n  the restore against tar x of the three volumes; the rebuild against tar c "
          "+ tar x of the three volumes\n")

    each = freezes
    freezes = [f for f, _, _ in each]
    p50, p95 = percentile(freezes, 50), percentile(freezes, 95)
    print(f"  the forge's freeze (paused during the cut, from each backup's manifest), "
          f"{len(freezes)} backups ({args.runs} runs + {args.freeze_samples} samples):")
    print(f"    p50 {p50} ms, p95 {p95} ms (min {min(freezes)}, max {max(freezes)}); "
          f"tar c of the forge's volume: {med['floor_c_forge'] * 1000:.0f} ms "
          f"(p50 {ratio(p50 / 1000, med['floor_c_forge']).strip()})")
    print("    each backup in order, the runs' then the samples': freeze ms / forge/data section s"
          " / whole command s")
    for i, (f, sec, whole) in enumerate(each):
        what = f"run {i + 1}" if i < args.runs else f"sample {i + 1 - args.runs}"
        print(f"      {what:10} {f:8} ms {sec:8.2f} s {whole:8.2f} s")


if __name__ == "__main__":
    main()
