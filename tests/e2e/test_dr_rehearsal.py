"""End-to-end: the disaster-recovery rehearsal (docs/dr.md, dr/RUNBOOK.md section 3), the
whole stack in one bring-up (CI time: one stack, not one per service).

Real peers: OpenBao on integrated storage (raft, its config a [files.*] file), PostgreSQL,
a consumer container that logs in to PostgreSQL with the password foundationd gives it,
the forge (FOUNDATIOND_FORGEJO_IMAGE: Gitea standing in for Forgejo) on PostgreSQL as in
production (its database one of [postgres.main]'s, its app.ini a [files.*] file with the
database password in it) with two repositories, and an S3 server (SeaweedFS, FOUNDATIOND_S3_IMAGE) with a
protected bucket. Real data goes in: rows, the credentials mirrored into Vault (one of them
rotated), commits pushed through the forge to both repositories, objects put with curl's
own SigV4 signing.

What stands for what:
- [backup.local] is a bucket of the host's own S3 server (SeaweedFS, on its root keys): the
  fast staging copy, destroyed with the host.
- [backup.offsite] is `s3:` on a second S3 server (versitygw, FOUNDATIOND_S3_IMAGE_VERSITYGW)
  in its own container, started by the test outside the project (no foundationd label): it
  stands for another host and survives the loss. Its key pair is a provided credential
  (`secret set`), sealed into the recovery bundle. The copy from the bucket to it holds two
  key pairs in one `restic copy`: the offsite is reached through restic's rclone: back end
  (docs/dr.md "The offsite copy").
- The fresh host: a new clone of the spec repository, a new state directory, a new HOME and
  a PATH-only environment for dr/restore-to-fresh-host.

A backup is taken into [backup.local] and copied offsite, and the recovery bundle is
exported into a git clone of the spec repository and committed. Then everything is
destroyed: every container and volume of the project (the local bucket with them), the
state directory, the secret files, the operator's checkout (restic runs with --no-cache: no
cache exists to remove, which the fresh HOME confirms). dr/restore-to-fresh-host runs with
only a fresh clone of the spec repository, the passphrase and the offsite peer; rows,
Vault's secrets, the rotated credential, every forge repository with its HEAD, every
object (key, size, SHA-256) are back, the consumer logs in with its current password, a
second `apply --once` changes nothing, and the rebuilt host's next backup goes into its new
local bucket and offsite again. Then the bundle's refusals: a flipped byte, a wrong
passphrase."""
import base64
import hashlib
import html
import json
import os
import re
import subprocess
import urllib.parse

import pytest

from conftest import docker, free_port, peer_image, s3_request, wait_for
from test_forgejo import http_json

PASS = "correct horse battery staple, rehearsed"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RAFT = """
ui            = false
disable_mlock = true
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

SPEC = """
[credentials.pg-super]
vault_path = "postgres/superuser"
[credentials.pg-super.fields]
password = { generate = "password", length = 24 }
[credentials.app-db]
vault_path = "app/db"
[credentials.app-db.fields]
username = "app"
password = { generate = "password", length = 32 }

[networks.@net]
[volumes.@pgdata]
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

[containers.@pg]
image = "${versions.postgres}"
networks = [{ name = "@net", aliases = ["db"] }]
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

[containers.@app]
image = "${versions.postgres}"
networks = ["@net"]
entrypoint = ["sleep", "infinity"]
secret_files = { "/run/secrets/db-password" = "${credentials.app-db.password}" }
depends_on = ["@pg"]
stop_timeout = "1s"

[credentials.forgejo-admin]
[credentials.forgejo-admin.fields]
password = { generate = "password", length = 24 }

# The forge on PostgreSQL, as in production: its database is a [postgres.main] database
# (backed up with the others, restored before the forge starts), its repositories in its
# volume. Its configuration is a file of the spec (the test image reads no environment).
[credentials.forge-db]
[credentials.forge-db.fields]
password = { generate = "password", length = 32 }
[credentials.forge-app]
[credentials.forge-app.fields]
secretKey = { generate = "password", length = 48 }
internalToken = { generate = "password", length = 64 }
jwtSecret = { generate = "base64url", bytes = 32 }

[postgres.main.roles.forge]
password = "${credentials.forge-db.password}"
[postgres.main.databases.forge]
owner = "forge"

[files.forge-ini]
owner = "1000:1000"
content = '''
APP_NAME = foundationd rehearsal forge
RUN_USER = git
RUN_MODE = prod
WORK_PATH = /data/gitea

[server]
PROTOCOL = http
HTTP_ADDR = 0.0.0.0
HTTP_PORT = 3000
ROOT_URL = http://127.0.0.1:3000/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
STATIC_ROOT_PATH = /usr/share/gitea
APP_DATA_PATH = /data/gitea/data

[database]
DB_TYPE = postgres
HOST = db:5432
NAME = forge
USER = forge
PASSWD = `${credentials.forge-db.password}`
SSL_MODE = disable

[repository]
ROOT = /data/git/repositories
SCRIPT_TYPE = sh
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = ${credentials.forge-app.secretKey}
INTERNAL_TOKEN = ${credentials.forge-app.internalToken}

[oauth2]
ENABLED = false
JWT_SECRET = ${credentials.forge-app.jwtSecret}

[service]
DISABLE_REGISTRATION = true

[webhook]
ALLOWED_HOST_LIST = *

[mailer]
ENABLED = false

[cron.update_checker]
ENABLED = false

[log]
MODE = console
LEVEL = Warn
'''

[volumes.@forgedata]
[containers.@forge]
image = "${versions.forge}"
ports = ["127.0.0.1:FORGEPORT:3000"]
networks = ["@net"]
volumes = ["@forgedata:/data"]
env = { GITEA_CUSTOM = "/etc/gitea-custom" }
files = { "/etc/gitea-custom/conf/app.ini" = "forge-ini" }
depends_on = { "@pg" = "healthy" }
stop_timeout = "5s"
[containers.@forge.healthcheck]
test = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/api/healthz"]
interval = "1s"
timeout = "5s"
retries = 120

[forgejo]
container = "@forge"
url = "http://127.0.0.1:FORGEPORT"
[forgejo.admin]
username = "platform-admin"
email = "platform-AT-example.org"
password = "${credentials.forgejo-admin.password}"
[forgejo.orgs.olsitec]
[forgejo.repos."olsitec/foundation"]
[forgejo.repos."olsitec/website"]

[credentials.s3-root]
[credentials.s3-root.fields]
accessKey = { generate = "hex", bytes = 10 }
secretKey = { generate = "password", length = 40 }

[volumes.@s3data]
[containers.@s3]
image = "${versions.seaweedfs}"
env = { AWS_ACCESS_KEY_ID = "${credentials.s3-root.accessKey}", AWS_SECRET_ACCESS_KEY = "${credentials.s3-root.secretKey}" }
volumes = ["@s3data:/data"]
ports = ["127.0.0.1:S3PORT:9000"]
stop_timeout = "2s"

[s3.main]
container = "@s3"
endpoint = "http://127.0.0.1:S3PORT"
region = "us-east-1"
access_key = "${credentials.s3-root.accessKey}"
secret_key = "${credentials.s3-root.secretKey}"

[buckets.@assets]
s3 = "main"
[buckets.@backups]
s3 = "main"

[credentials.offsite]
[credentials.offsite.fields]
key = { provided = true }
secret = { provided = true }

[backup]
recovery = "dr/recovery.sealed"
[backup.local]
bucket = "@backups"
prefix = "restic"
[backup.offsite]
repository = "OFFSITE"
access_key = "${credentials.offsite.key}"
secret_key = "${credentials.offsite.secret}"
"""

FILL = """
CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO items SELECT i, md5(i::text) FROM generate_series(1, 300) i;
ALTER TABLE items OWNER TO app;
"""
FINGERPRINT = "SELECT count(*) || ':' || md5(string_agg(body, ',' ORDER BY id)) FROM items;"


OBJECTS = {
    "top.txt": b"top level\n",
    "bin/every-byte.bin": bytes(range(256)) * 64,
    "photos/2026/a cat image.jpg": hashlib.sha256(b"seed").digest() * 4096,  # 128 KiB
    "docs/r\u00e9sum\u00e9 \u20ac.pdf": b"%PDF-1.4\n\x00\x01\xff",
    "empty": b"",
}


def git(*args, cwd, extra_env=None):
    env = dict(os.environ, GIT_AUTHOR_NAME="op", GIT_AUTHOR_EMAIL="op@x",
               GIT_COMMITTER_NAME="op", GIT_COMMITTER_EMAIL="op@x", GIT_TERMINAL_PROMPT="0",
               GIT_CONFIG_NOSYSTEM="1", **(extra_env or {}))
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def s3_object(tmp, port, keys, method, bucket, key="", query="", upload=None):
    """One S3 object request signed by curl's own SigV4 (not foundationd's code), the key
    pair in a curl config file (not argv). Returns (HTTP status, body bytes)."""
    cfg = tmp / "curl-obj.cfg"
    cfg.write_text(f'user = "{keys[0]}:{keys[1]}"\n')
    os.chmod(cfg, 0o600)
    url = f"http://127.0.0.1:{port}/{bucket}"
    if key:
        url += "/" + urllib.parse.quote(key, safe="/~")
    if query:
        url += "?" + query
    out, body = tmp / "curl-obj.out", tmp / "curl-obj.in"
    payload = upload if upload is not None else b""
    cmd = ["curl", "-sS", "-K", str(cfg), "--aws-sigv4", "aws:amz:us-east-1:s3", "--path-as-is",
           "-H", f"x-amz-content-sha256: {hashlib.sha256(payload).hexdigest()}",
           "-w", "%{http_code}", "-o", str(out)]
    if upload is not None:
        body.write_bytes(upload)
        cmd += ["-T", str(body)]
    else:
        cmd += ["-X", method]
    r = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return int(r.stdout), (out.read_bytes() if out.exists() else b"")


def bucket_contents(tmp, port, keys, bucket):
    """{key: (size, SHA-256)} of every object, listed then each one read back."""
    code, text = s3_object(tmp, port, keys, "GET", bucket, query="list-type=2")
    assert code == 200, text
    text = text.decode()
    assert "<IsTruncated>true</IsTruncated>" not in text
    got = {}
    for part in text.split("<Contents>")[1:]:
        key = html.unescape(part.split("<Key>")[1].split("</Key>")[0])
        size = int(part.split("<Size>")[1].split("</Size>")[0])
        code, content = s3_object(tmp, port, keys, "GET", bucket, key)
        assert code == 200 and len(content) == size, (key, code, size)
        got[key] = (size, hashlib.sha256(content).hexdigest())
    return got


@pytest.fixture(scope="module")
def images():
    return (peer_image("FOUNDATIOND_POSTGRES_IMAGE", "tests/peers/postgres-image"),
            peer_image("FOUNDATIOND_OPENBAO_IMAGE", "tests/peers/openbao-image"))


def project_secret_dirs(name):
    """The host's secret-file directories of the project's containers."""
    root = "/run/foundationd/secrets"
    return [os.path.join(root, d) for d in (os.listdir(root) if os.path.isdir(root) else [])
            if d.startswith(name + "-")] + [os.path.join(root, "_files", name)]


@pytest.fixture
def offsite_peer(project, tmp_path):
    """The offsite host: versitygw in a container of its own, outside the project (no
    foundationd label: destroying the project leaves it), with its own key pair and a
    bucket for the repository. Yields (port, (access key, secret key))."""
    image = peer_image("FOUNDATIOND_S3_IMAGE_VERSITYGW", "tests/peers/versitygw-image")
    port = free_port()
    keys = (os.urandom(10).hex(), base64.b64encode(os.urandom(30)).decode())
    name = f"{project.name}-offsite-peer"
    envfile = tmp_path / "offsite-peer.env"
    envfile.write_text(f"ROOT_ACCESS_KEY_ID={keys[0]}\nROOT_SECRET_ACCESS_KEY={keys[1]}\n")
    os.chmod(envfile, 0o600)
    docker("run", "-d", "--name", name, "--env-file", str(envfile), "-p",
           f"127.0.0.1:{port}:9000", image)
    try:
        def answers():
            try:
                return s3_request(tmp_path, port, keys, "GET")[0] == 200
            except AssertionError:  # curl: the port is not listening yet
                return False
        wait_for(answers, "the offsite peer answering", timeout=60)
        code, text = s3_request(tmp_path, port, keys, "PUT", "offsite")
        assert code == 200, text
        yield port, keys
    finally:
        docker("rm", "-f", "-v", name, check=False)
        # The restored host's secret files too (the project's cleanup removes its
        # containers and volumes).
        subprocess.run(["rm", "-rf", *project_secret_dirs(project.name)], check=False)


def test_rebuild_a_lost_host_from_the_spec_repository_and_the_passphrase(project, tmp_path,
                                                                          images, offsite_peer):
    pg_image, bao_image = images
    forge_image = peer_image("FOUNDATIOND_FORGEJO_IMAGE", "tests/peers/forgejo-image")
    s3_image = peer_image("FOUNDATIOND_S3_IMAGE", "tests/peers/seaweedfs-image")
    off_port, off_keys = offsite_peer
    name = project.name
    forge_port, s3_port = free_port(), free_port()
    offsite = f"s3:http://127.0.0.1:{off_port}/offsite/foundation"
    # The spec repository: a bare "origin" and the operator's checkout.
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", str(origin), cwd=tmp_path)
    work = tmp_path / "checkout"
    git("clone", "-q", str(origin), str(work), cwd=tmp_path)
    (work / "VERSIONS").write_text(
        f'[images]\npostgres = "{pg_image}"\nopenbao = "{bao_image}"\nforge = "{forge_image}"\n'
        f'seaweedfs = "{s3_image}"\n')
    (work / "raft.hcl").write_text(RAFT)
    body = (SPEC.replace("BAOPORT", str(free_port()))
            .replace("FORGEPORT", str(forge_port)).replace("S3PORT", str(s3_port))
            .replace("OFFSITE", offsite).replace("@", name + "-").replace("-AT-", "@"))
    (work / "foundation.toml").write_text(
        f'spec_version = 1\nproject = "{name}"\nversions = "VERSIONS"\n' + body)
    spec = str(work / "foundation.toml")
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    state = str(tmp_path / "state")
    bucket = f"{name}-assets"

    def fd(*args, state_dir=state, spec_file=spec, stdin=None):
        return project.run(*args, "--spec", spec_file, "--state-dir", state_dir,
                           "--passphrase-file", str(passfile), stdin=stdin)

    def secret(field, state_dir=state, spec_file=spec):
        r = fd("secret", "show", field, state_dir=state_dir, spec_file=spec_file)
        assert r.returncode == 0, r.stderr
        return r.stdout.rstrip("\n")

    def sql(statement, db="appdb"):
        r = subprocess.run(["docker", "exec", "-i", "-u", "postgres", f"{name}-pg", "psql",
                            "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db],
                           capture_output=True, text=True, input=statement)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def consumer_login():
        # The consumer's own secret file, over the network, as the app role.
        return subprocess.run(
            ["docker", "exec", f"{name}-app", "sh", "-c",
             f'PGPASSWORD="$(cat /run/secrets/db-password)" psql -X -At -h {name}-pg -U app '
             '-d appdb -c "SELECT count(*) FROM items"'],
            capture_output=True, text=True)

    def forge_git(*args, password, cwd=tmp_path):
        header = "Authorization: Basic " + base64.b64encode(
            f"platform-admin:{password}".encode()).decode()
        return git(*args, cwd=cwd, extra_env={
            "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": header})

    repos = ("olsitec/foundation", "olsitec/website")

    def forge_heads(password):
        """Every branch of every repository, as the forge serves it over git."""
        return {repo: forge_git("ls-remote", "--heads",
                                f"http://127.0.0.1:{forge_port}/{repo}.git", password=password)
                for repo in repos}

    # 1. The host as it runs: state, the offsite key pair (provided), converge, data,
    # a rotation.
    r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile),
                    "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    # (`secret set` converges: after the first field the credential is still blocked.)
    for field, value in zip(("key", "secret"), off_keys):
        r = fd("secret", "set", f"offsite.{field}", stdin=value)
        assert f"credential.offsite.{field}: set (version 1)" in r.stdout, r.stdout + r.stderr
    assert r.returncode == 0, r.stdout + r.stderr
    r = fd("apply", "--once")
    assert r.returncode == 0, r.stdout + r.stderr
    sql(FILL)
    before = sql(FINGERPRINT)
    assert before.startswith("300:")
    r = fd("rotate", "app-db")
    assert r.returncode == 0, r.stdout + r.stderr
    current_password = secret("app-db.password")
    assert consumer_login().stdout.strip() == "300"
    # Commits pushed through the forge, two to each repository.
    forge_pw = secret("forgejo-admin.password")
    for repo in repos:
        src = tmp_path / ("src-" + repo.replace("/", "-"))
        git("init", "-q", "-b", "main", str(src), cwd=tmp_path)
        for i in range(2):
            (src / f"file-{i}.txt").write_text(f"{repo} commit {i}\n")
            (src / f"blob-{i}.bin").write_bytes(os.urandom(32 * 1024))
            git("add", "-A", cwd=src)
            git("commit", "-q", "-m", f"commit {i}", cwd=src)
            forge_git("push", "-q", f"http://127.0.0.1:{forge_port}/{repo}.git",
                      "HEAD:refs/heads/main", password=forge_pw, cwd=src)
    heads = forge_heads(forge_pw)
    # The forge keeps its rows in PostgreSQL (no SQLite file in its volume).
    assert sql("SELECT count(*) FROM repository", db="forge") == "2"
    r = subprocess.run(["docker", "exec", f"{name}-forge", "ls", "/data/gitea/data"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "gitea.db" not in r.stdout, r.stdout + r.stderr
    for repo in repos:
        head = git("rev-parse", "HEAD", cwd=tmp_path / ("src-" + repo.replace("/", "-"))).strip()
        assert heads[repo].split() == [head, "refs/heads/main"], heads
    # Objects in the protected bucket.
    s3_keys = (secret("s3-root.accessKey"), secret("s3-root.secretKey"))
    for key, content in OBJECTS.items():
        code, _ = s3_object(tmp_path, s3_port, s3_keys, "PUT", bucket, key, upload=content)
        assert code == 200, (key, code)
    objects = bucket_contents(tmp_path, s3_port, s3_keys, bucket)
    assert objects == {k: (len(v), hashlib.sha256(v).hexdigest()) for k, v in OBJECTS.items()}

    # 2. A backup, locally and offsite (the versitygw peer); Vault through its snapshot API.
    r = fd("backup")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vault: " in r.stdout and "secrets under foundation/" in r.stdout, r.stdout
    assert "not included: vault" not in r.stdout
    assert f"buckets/{bucket}: 5 objects" in r.stdout, r.stdout
    assert "2 repositories, the forge paused" in r.stdout, r.stdout
    assert "postgres/main/db/forge" in r.stdout, r.stdout
    assert "offsite: backup " in r.stdout and "copied to" in r.stdout, r.stdout
    for v in (current_password, forge_pw, *s3_keys, off_keys[1]):
        assert v not in r.stdout + r.stderr
    first_id = re.search(r"offsite: backup (\S+) copied to", r.stdout).group(1)
    # The local copy is in the host's own bucket (restic's config object at its prefix).
    code, _ = s3_object(tmp_path, s3_port, s3_keys, "GET", f"{name}-backups", "restic/config")
    assert code == 200, code

    # 3. The recovery bundle into the spec repository, committed and pushed.
    r = fd("backup", "export-recovery")
    assert r.returncode == 0, r.stdout + r.stderr
    sealed = (work / "dr" / "recovery.sealed").read_text()
    for v in (current_password, f"127.0.0.1:{off_port}", *off_keys):
        assert v not in sealed
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "spec, with the recovery bundle", cwd=work)
    git("push", "-q", "origin", "HEAD", cwd=work)

    # 4. The host is lost: every container and volume, the state, the local
    # repository, the secret files, the operator's checkout. What is left: origin, the
    # passphrase, the offsite peer.
    project.cleanup()
    assert not docker("ps", "-aq", "--filter", f"label=foundationd.project={name}").stdout.strip()
    assert not docker("volume", "ls", "-q", "--filter",
                      f"label=foundationd.project={name}").stdout.strip()
    subprocess.run(["rm", "-rf", state, str(work), *project_secret_dirs(name)], check=True)

    # 5. The fresh host: a new clone, a new HOME, a new state directory.
    home = tmp_path / "fresh-home"
    home.mkdir()
    clone = tmp_path / "fresh-clone"
    git("clone", "-q", str(origin), str(clone), cwd=tmp_path)
    new_state = str(tmp_path / "fresh-state")
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "NO_COLOR": "1",
           "FOUNDATIOND_BIN": project.bin}
    r = subprocess.run([os.path.join(ROOT, "dr", "restore-to-fresh-host"), "--state-dir",
                        new_state, "--passphrase-file", str(passfile), str(clone)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "restoring from the offsite repository s3:" in r.stdout, r.stdout
    assert "state: backup" in r.stdout and "opened with the passphrase" in r.stdout
    assert "vault: snapshot restored" in r.stdout, r.stdout
    assert "vault: unsealed with the keys of the state" in r.stdout
    assert "as in the manifest" in r.stdout
    assert "postgres/main/db/appdb: restored" in r.stdout, r.stdout
    restored = f"buckets/{bucket}: restored into bucket {bucket} on [s3.main] (5 objects, "
    assert restored in r.stdout, r.stdout
    assert "forge/data: restored into the forge's volumes (2 repositories" in r.stdout, r.stdout
    # The forge starts only once its database and the buckets are restored (a forge on
    # PostgreSQL would otherwise write its schema into the empty database first).
    out = r.stdout
    assert (out.index("postgres/main/db/appdb: restored") < out.index(f"buckets/{bucket}: restored")
            < out.index("starting the forge's container") < out.index("forge/data: restored")), out
    assert (out.index("postgres/main/db/forge: restored")
            < out.index("starting the forge's container")), out
    assert not (home / ".cache" / "restic").exists()  # --no-cache: nothing cached

    # 6. Everything is back.
    new_spec = str(clone / "foundation.toml")
    assert sql(FINGERPRINT) == before
    login = consumer_login()
    assert login.returncode == 0 and login.stdout.strip() == "300", login.stderr
    assert secret("app-db.password", new_state, new_spec) == current_password
    assert secret("forgejo-admin.password", new_state, new_spec) == forge_pw
    assert forge_heads(forge_pw) == heads
    assert sql("SELECT count(*) FROM repository", db="forge") == "2"
    for repo in repos:
        code, info = http_json("GET", "127.0.0.1", forge_port, f"/api/v1/repos/{repo}",
                               "platform-admin", forge_pw)
        assert code == 200 and not info["empty"], info
    assert bucket_contents(tmp_path, s3_port, s3_keys, bucket) == objects
    r = fd("apply", "--once", state_dir=new_state, spec_file=new_spec)
    assert r.returncode == 0, r.stdout + r.stderr
    r = fd("plan", state_dir=new_state, spec_file=new_spec)
    assert r.returncode == 0, r.stdout + r.stderr  # 0: no changes
    # The rebuilt host backs up again: into its new local bucket, and offsite beside the
    # backup it was rebuilt from.
    r = fd("backup", state_dir=new_state, spec_file=new_spec)
    assert r.returncode == 0, r.stdout + r.stderr
    second_id = re.search(r"offsite: backup (\S+) copied to", r.stdout).group(1)
    r = fd("backup", "list", "--offsite", state_dir=new_state, spec_file=new_spec)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{first_id}  complete" in r.stdout and f"{second_id}  complete" in r.stdout, r.stdout

    # 7. A second run onto the restored host is refused and changes nothing.
    r = subprocess.run([os.path.join(ROOT, "dr", "restore-to-fresh-host"), "--state-dir",
                        new_state, "--passphrase-file", str(passfile), str(clone)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "never replaces one" in r.stderr

    # 8. The bundle: one flipped byte, or a wrong passphrase, refused before anything.
    bundle = clone / "dr" / "recovery.sealed"
    data = bytearray(bundle.read_bytes())
    i = data.index(b'"sealed": "') + 40
    data[i] = ord("A") if data[i] != ord("A") else ord("B")
    bad = tmp_path / "flipped.sealed"
    bad.write_bytes(bytes(data))
    empty_state = str(tmp_path / "never")
    r = project.run("restore", "--from-recovery", str(bad), "--state-dir", empty_state,
                    "--passphrase-file", str(passfile))
    assert r.returncode == 1 and "altered or truncated" in r.stderr, r.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase at all\n")
    r = project.run("restore", "--from-recovery", str(bundle), "--state-dir", empty_state,
                    "--passphrase-file", str(wrong))
    assert r.returncode == 1 and "passphrase does not open" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(empty_state, "state.db"))


FILE_STORAGE_SPEC = """
[credentials.app]
vault_path = "app/db"
[credentials.app.fields]
password = { generate = "password", length = 24 }

[volumes.@bao-data]

[containers.@bao]
image = "${versions.openbao}"
volumes = ["@bao-data:/openbao/data"]
ports = ["127.0.0.1:BAOPORT:8200"]
stop_timeout = "2s"

[vault]
container = "@bao"
address = "http://127.0.0.1:BAOPORT"
key_shares = 1
key_threshold = 1
kv_mount = "foundation"

[backup.local]
path = "LOCAL"
"""


def test_a_vault_on_file_storage_is_refused_by_name_and_no_backup_is_complete(project,
                                                                             tmp_path, images):
    """The test image's own configuration is `file` storage, which has no snapshot API:
    the backup fails naming the requirement (raft), and nothing is listed complete."""
    _, bao_image = images
    name = project.name
    (tmp_path / "VERSIONS").write_text(f'[images]\nopenbao = "{bao_image}"\n')
    body = (FILE_STORAGE_SPEC.replace("BAOPORT", str(free_port()))
            .replace("LOCAL", str(tmp_path / "repo")).replace("@", name + "-"))
    spec = tmp_path / "foundation.toml"
    spec.write_text(f'spec_version = 1\nproject = "{name}"\nversions = "VERSIONS"\n' + body)
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    state = str(tmp_path / "state")

    def fd(*args):
        return project.run(*args, "--spec", str(spec), "--state-dir", state,
                           "--passphrase-file", str(passfile))

    r = project.run("init", "--state-dir", state, "--passphrase-file", str(passfile),
                    "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    r = fd("apply", "--once")
    assert r.returncode == 0, r.stdout + r.stderr
    r = fd("backup")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "needs integrated storage" in r.stderr and 'storage "raft"' in r.stderr, r.stderr
    r = fd("backup", "list", "--json")
    assert r.returncode == 0, r.stderr
    assert all(not b["complete"] for b in json.loads(r.stdout)), r.stdout
