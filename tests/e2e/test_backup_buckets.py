"""End-to-end: the objects of a spec's buckets in `foundationd backup`, and `restore
--section buckets/NAME`, against real S3 servers (SeaweedFS, tests/peers/seaweedfs-image,
and versitygw, tests/peers/versitygw-image; each test runs on both) and a real restic
repository. Objects (binary content, nested keys, spaces and non-ASCII
in keys, an empty one) are put in with curl's own SigV4 signing, not foundationd's code;
the backup's manifest lists the inventory; the disposable bucket is not in the backup;
objects are then deleted and overwritten; the restore refuses the non-empty bucket without
--force, then restores into the emptied bucket, and every key, size and content hash is
compared with what was put in."""
import hashlib
import html
import json
import os
import shutil
import subprocess
import urllib.parse

import pytest

from conftest import free_port, peer_image

PASS = "bucket backups e2e passphrase, long enough"

SPEC = """
[credentials.s3-root]
[credentials.s3-root.fields]
accessKey = { generate = "hex", bytes = 10 }
secretKey = { generate = "password", length = 40 }

[containers.@s3]
image = "${versions.s3server}"
env = { ACCESS_VAR = "${credentials.s3-root.accessKey}", SECRET_VAR = "${credentials.s3-root.secretKey}" }
ports = ["127.0.0.1:PORT:9000"]
stop_timeout = "1s"

[s3.main]
container = "@s3"
endpoint = "http://127.0.0.1:PORT"
region = "us-east-1"
access_key = "${credentials.s3-root.accessKey}"
secret_key = "${credentials.s3-root.secretKey}"

[buckets.@data]
s3 = "main"

[buckets.@scratch]
s3 = "main"

[backup]
disposable = ["@scratch"]
[backup.local]
path = "REPO"
"""


# server -> (its image's variable, its recipe, the variables its root keys are read from)
SERVERS = {
    "seaweedfs": ("FOUNDATIOND_S3_IMAGE", "tests/peers/seaweedfs-image",
                  "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    "versitygw": ("FOUNDATIOND_S3_IMAGE_VERSITYGW", "tests/peers/versitygw-image",
                  "ROOT_ACCESS_KEY_ID", "ROOT_SECRET_ACCESS_KEY"),
}


@pytest.fixture(params=sorted(SERVERS))
def server(request):
    env, recipe, access_var, secret_var = SERVERS[request.param]
    return peer_image(env, recipe), access_var, secret_var


class Stack:
    def __init__(self, project, tmp_path, server):
        image, access_var, secret_var = server
        self.p = project
        self.tmp = tmp_path
        self.port = free_port()
        self.repo = str(tmp_path / "repo")
        (tmp_path / "VERSIONS").write_text(
            f'[images]\nbusybox = "{project.image}"\ns3server = "{image}"\n')
        self.spec = project.write(SPEC.replace("PORT", str(self.port)).replace("REPO", self.repo)
                                  .replace("ACCESS_VAR", access_var)
                                  .replace("SECRET_VAR", secret_var))
        self.state = str(tmp_path / "state")
        self.passfile = str(tmp_path / "pass")
        with open(self.passfile, "w") as f:
            f.write(PASS + "\n")
        r = project.run("init", "--state-dir", self.state, "--passphrase-file", self.passfile,
                        "--kdf", "interactive")
        assert r.returncode == 0, r.stderr
        self.data = f"{project.name}-data"
        self.scratch = f"{project.name}-scratch"
        self._keys = None

    def fd(self, *args):
        return self.p.run(*args, "--spec", self.spec, "--state-dir", self.state,
                          "--passphrase-file", self.passfile)

    def keys(self):
        if self._keys is None:
            out = []
            for field in ("accessKey", "secretKey"):
                r = self.p.run("secret", "show", f"s3-root.{field}", "--state-dir", self.state,
                               "--passphrase-file", self.passfile)
                assert r.returncode == 0, r.stderr
                out.append(r.stdout.rstrip("\n"))
            self._keys = tuple(out)
        return self._keys

    def curl(self, method, bucket, key="", query="", upload=None, out=None):
        """One S3 request signed by curl's own SigV4; the keys in a curl config file."""
        access, secret = self.keys()
        cfg = self.tmp / "curl.cfg"
        cfg.write_text(f'user = "{access}:{secret}"\n')
        os.chmod(cfg, 0o600)
        url = f"http://127.0.0.1:{self.port}/{bucket}"
        if key:
            url += "/" + urllib.parse.quote(key, safe="/~")
        if query:
            url += "?" + query
        payload = b""
        if upload is not None:
            with open(upload, "rb") as f:
                payload = f.read()
        cmd = ["curl", "-sS", "-K", str(cfg), "--aws-sigv4", "aws:amz:us-east-1:s3",
               "--path-as-is", "-H", f"x-amz-content-sha256: {hashlib.sha256(payload).hexdigest()}",
               "-w", "%{http_code}", "-o", out or "/dev/null"]
        if upload is not None:
            cmd += ["-T", upload]
        else:
            cmd += ["-X", method]
        r = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return int(r.stdout)

    def put(self, bucket, key, content):
        path = self.tmp / "upload.bin"
        path.write_bytes(content)
        code = self.curl("PUT", bucket, key, upload=str(path))
        assert code == 200, (key, code)

    def get(self, bucket, key):
        path = self.tmp / "download.bin"
        code = self.curl("GET", bucket, key, out=str(path))
        return code, (path.read_bytes() if code == 200 else None)

    def delete(self, bucket, key):
        code = self.curl("DELETE", bucket, key)
        assert code in (200, 204), (key, code)

    def keys_in(self, bucket):
        path = self.tmp / "list.xml"
        code = self.curl("GET", bucket, query="list-type=2", out=str(path))
        assert code == 200
        text = path.read_text(encoding="utf-8")
        assert "<IsTruncated>true</IsTruncated>" not in text
        return sorted(html.unescape(part.split("</Key>")[0]) for part in text.split("<Key>")[1:])


@pytest.fixture
def stack(project, tmp_path, server):
    return Stack(project, tmp_path, server)


def objects():
    every_byte = bytes(range(256)) * 64
    noise = hashlib.sha256(b"seed").digest() * 4096  # 128 KiB
    return {
        "top.txt": b"top level\n",
        "bin/every-byte.bin": every_byte,
        "photos/2026/a cat image.jpg": noise,
        "docs/r\u00e9sum\u00e9 \u20ac.pdf": b"%PDF-1.4\n\x00\x01\xff",
        "a/b/c/d/deep.dat": b"\x00" * 1000 + b"end",
        "empty": b"",
    }


def sha(b):
    return hashlib.sha256(b).hexdigest()


def test_bucket_objects_backed_up_and_restored(stack, project):
    r = stack.fd("apply", "--once")
    assert r.returncode == 0, r.stdout + r.stderr
    want = objects()
    for key, content in want.items():
        stack.put(stack.data, key, content)
    stack.put(stack.scratch, "tmp/cache.bin", b"disposable")
    assert stack.keys_in(stack.data) == sorted(want)

    r = stack.fd("backup")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"buckets/{stack.data}: 6 objects" in r.stdout, r.stdout
    assert stack.keys()[1] not in r.stdout + r.stderr
    # No staging directory is left beside the state.
    assert sorted(n for n in os.listdir(stack.state) if n.startswith(("bucket-", "restore-"))) == []

    r = stack.fd("backup", "list", "--json")
    assert r.returncode == 0, r.stderr
    backups = json.loads(r.stdout)
    assert len(backups) == 1 and backups[0]["complete"]
    m = backups[0]["manifest"]
    sections = {s["name"]: s for s in m["sections"]}
    data = sections[f"buckets/{stack.data}"]
    assert f"buckets/{stack.scratch}" not in sections  # disposable
    assert data["kind"] == "bucket-objects" and data["bucket"] == stack.data
    assert data["counts"]["objects"] == 6
    assert data["bytes"] == sum(len(c) for c in want.values())
    inventory = {o["key"]: o for o in data["objects"]}
    assert sorted(inventory) == sorted(want)
    for key, content in want.items():
        assert inventory[key]["size"] == len(content)
        assert inventory[key]["etag"] == hashlib.md5(content).hexdigest(), key
    assert not any("bucket" in n for n in m["not_included"]), m["not_included"]

    # `backup verify` reads every object back and compares it with the inventory.
    r = stack.fd("backup", "verify", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rec = json.loads(r.stdout)
    checks = {c["section"]: c for c in rec["checks"]}
    assert checks[f"buckets/{stack.data}"]["ok"] is True, rec
    assert "6 objects read back" in checks[f"buckets/{stack.data}"]["detail"], rec
    assert sorted(n for n in os.listdir(stack.state) if n.startswith(("bucket-", "restore-"))) == []

    # Damage: one deleted, one overwritten, one added.
    stack.delete(stack.data, "photos/2026/a cat image.jpg")
    stack.put(stack.data, "top.txt", b"overwritten\n")
    stack.put(stack.data, "new-after-backup.txt", b"new")

    # A bucket that holds objects is refused without --force, and nothing is written.
    r = stack.fd("restore", "--section", f"buckets/{stack.data}")
    assert r.returncode != 0
    assert "already holds objects" in r.stderr and "nothing was restored" in r.stderr, r.stderr
    assert stack.get(stack.data, "top.txt")[1] == b"overwritten\n"
    assert stack.get(stack.data, "photos/2026/a cat image.jpg")[0] == 404

    # A tampered repository (the first byte of every pack flipped: each pack's first blob
    # no longer authenticates) is refused before anything is written; then the repository
    # is put back.
    pristine = str(stack.tmp / "repo.pristine")
    shutil.copytree(stack.repo, pristine)
    for root, _, files in os.walk(os.path.join(stack.repo, "data")):
        for name in files:
            path = os.path.join(root, name)
            os.chmod(path, 0o600)
            with open(path, "r+b") as f:
                b = f.read(1)
                f.seek(0)
                f.write(bytes([b[0] ^ 0xFF]))
    before = stack.keys_in(stack.data)
    r = stack.fd("restore", "--section", f"buckets/{stack.data}", "--force")
    assert r.returncode != 0 and "nothing was restored" in r.stderr, r.stdout + r.stderr
    assert stack.keys_in(stack.data) == before
    assert stack.get(stack.data, "top.txt")[1] == b"overwritten\n"
    shutil.rmtree(stack.repo)
    shutil.copytree(pristine, stack.repo)

    # Emptied (by hand: foundationd never deletes an object), then restored.
    for key in stack.keys_in(stack.data):
        stack.delete(stack.data, key)
    assert stack.keys_in(stack.data) == []
    r = stack.fd("restore", "--section", f"buckets/{stack.data}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verified (6 objects" in r.stdout, r.stdout
    assert "keys, sizes and ETags equal to the manifest" in r.stdout, r.stdout
    assert stack.keys_in(stack.data) == sorted(want)
    for key, content in want.items():
        code, got = stack.get(stack.data, key)
        assert code == 200, key
        assert sha(got) == sha(content), key
    assert sorted(n for n in os.listdir(stack.state) if n.startswith(("bucket-", "restore-"))) == []

    # --force over a bucket with other objects: the backup's objects are written back,
    # the others are kept (nothing is deleted).
    stack.put(stack.data, "top.txt", b"changed again\n")
    stack.put(stack.data, "kept.txt", b"kept")
    r = stack.fd("restore", "--section", "buckets", "--force")
    assert r.returncode == 0, r.stdout + r.stderr
    assert stack.get(stack.data, "top.txt")[1] == want["top.txt"]
    assert stack.get(stack.data, "kept.txt")[1] == b"kept"
    assert stack.keys_in(stack.scratch) == ["tmp/cache.bin"]  # untouched, never in the backup

    # The disposable bucket has no section to restore.
    r = stack.fd("restore", "--section", f"buckets/{stack.scratch}")
    assert r.returncode != 0 and "no section" in r.stderr, r.stderr


def test_restore_from_recovery_brings_the_buckets_back(stack, project, tmp_path):
    """A lost host: the S3 server's container and data gone, a fresh state directory;
    `restore --from-recovery` restores the state, starts the data services (the S3 server
    among them, its buckets created empty) and writes the buckets' objects back."""
    r = stack.fd("apply", "--once")
    assert r.returncode == 0, r.stdout + r.stderr
    want = objects()
    for key, content in want.items():
        stack.put(stack.data, key, content)
    stack.keys()  # read while the old state is there (the same keys come back with it)
    r = stack.fd("backup")
    assert r.returncode == 0, r.stdout + r.stderr
    bundle = str(tmp_path / "recovery.sealed")
    r = stack.fd("backup", "export-recovery", "--out", bundle)
    assert r.returncode == 0, r.stdout + r.stderr

    subprocess.run(["docker", "rm", "-f", "-v", f"{project.name}-s3"], check=True,
                   capture_output=True)
    fresh = str(tmp_path / "fresh-state")
    r = project.run("restore", "--from-recovery", bundle, "--spec", stack.spec,
                    "--state-dir", fresh, "--passphrase-file", stack.passfile)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"buckets/{stack.data}: restored into bucket {stack.data}" in r.stdout, r.stdout
    assert stack.keys_in(stack.data) == sorted(want)
    for key, content in want.items():
        code, got = stack.get(stack.data, key)
        assert code == 200 and sha(got) == sha(content), key
    assert stack.keys_in(stack.scratch) == []  # disposable: created again, empty
