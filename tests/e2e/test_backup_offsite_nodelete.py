"""End-to-end: an `s3:` offsite credential that can write but not delete (docs/dr.md
"Threat model of a target"), against a real S3 server and Debian's restic 0.14.

The offsite host is versitygw (FOUNDATIOND_S3_IMAGE_VERSITYGW, v1.8.0, posix back end with
versioning) in a container of its own, outside the project, with its internal IAM
(VGW_IAM_DIR, the environment form of `--iam-dir`, on a tmpfs: the image's own command is
kept). As its root account the test creates the bucket, enables versioning, creates an
account with role `user` (`versitygw admin create-user`, run inside the peer) and puts a
bucket policy that gives that account s3:ListBucket and s3:GetBucketLocation on the bucket,
s3:GetObject and s3:PutObject on the repository's prefix, and s3:DeleteObject on the
repository's `locks/` only. foundationd gets that account's key pair as provided
credentials (`secret set`), and nothing else.

With real outcomes:
- two backups (state only: the smallest spec `foundationd backup` takes) are copied offsite
  and confirmed; the second copy goes on top of the first (restic creates and deletes its
  lock files there every time); `backup list --offsite` lists both, and `restore --offsite`
  reads one back through `restic check`;
- with the same key: a SigV4 DELETE (curl's own signing) of the config, a key file, a
  snapshot, an index and a data pack is refused with 403, so is a multi-object delete, a
  DELETE of an old version, removing the bucket policy and suspending versioning; `restic
  forget --prune` is refused its first delete (restic 0.14 then retries for about a
  minute: the test interrupts it there) and every snapshot is still listed;
- an overwrite of a snapshot file is accepted (s3:PutObject cannot tell a new key from an
  existing one, and versitygw's policy conditions have no key for it) but versioning keeps
  the previous version: the owner lists it, reads it back byte for byte and puts it back;
- the owner (versitygw's root key) prunes with `restic forget --prune`.

The repository password is sealed in the state; the test reads it as foundationd hands it
to restic (on fd 3), through a FOUNDATIOND_RESTIC wrapper, to run restic itself as the
offsite key's holder and as the offsite host's owner would."""
import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import threading
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from conftest import docker, free_port, peer_image, s3_request, wait_for

PASS = "correct horse battery staple, append only"
BUCKET = "offsite"
PREFIX = "foundation"

# The smallest spec `foundationd backup` takes: the state alone, a local directory and the
# offsite bucket on the offsite key pair (provided).
SPEC = """
[credentials.offsite]
[credentials.offsite.fields]
key = { provided = true }
secret = { provided = true }

[backup.local]
path = "LOCAL"
[backup.offsite]
repository = "OFFSITE"
access_key = "${credentials.offsite.key}"
secret_key = "${credentials.offsite.secret}"
"""


def bucket_policy(access_key):
    """Write, read and list the repository; delete its lock files only."""
    who = {"AWS": [access_key]}
    repo = f"arn:aws:s3:::{BUCKET}/{PREFIX}"
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": who, "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": f"arn:aws:s3:::{BUCKET}"},
        {"Effect": "Allow", "Principal": who, "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": f"{repo}/*"},
        {"Effect": "Allow", "Principal": who, "Action": ["s3:DeleteObject"],
         "Resource": f"{repo}/locks/*"},
    ]})


def s3_object(tmp, port, keys, method, key, query="", upload=None, headers=()):
    """One S3 object request signed by curl's own SigV4 (not foundationd's code), the key
    pair in a curl config file (not argv). Returns (HTTP status, body bytes)."""
    cfg = tmp / "curl-obj.cfg"
    cfg.write_text(f'user = "{keys[0]}:{keys[1]}"\n')
    os.chmod(cfg, 0o600)
    url = f"http://127.0.0.1:{port}/{BUCKET}"
    if key:
        url += "/" + urllib.parse.quote(key, safe="/~")
    if query:
        url += "?" + query
    out, body = tmp / "curl-obj.out", tmp / "curl-obj.in"
    out.unlink(missing_ok=True)
    payload = upload if upload is not None else b""
    cmd = ["curl", "-sS", "-K", str(cfg), "--aws-sigv4", "aws:amz:us-east-1:s3", "--path-as-is",
           "-H", f"x-amz-content-sha256: {hashlib.sha256(payload).hexdigest()}",
           "-w", "%{http_code}", "-o", str(out)]
    for h in headers:
        cmd += ["-H", h]
    if upload is not None:
        body.write_bytes(upload)
        cmd += ["-X", method, "--data-binary", f"@{body}"]
    else:
        cmd += ["-X", method]
    r = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return int(r.stdout), (out.read_bytes() if out.exists() else b"")


def xml_values(text, tag):
    """Every <tag> of an S3 XML answer, in document order (namespace ignored)."""
    return [e.text or "" for e in ET.fromstring(text).iter() if e.tag.split("}")[-1] == tag]


def bucket_keys(tmp, port, keys):
    """Every current object's key (ListObjectsV2; the repository is small: one page)."""
    code, text = s3_object(tmp, port, keys, "GET", "", query="list-type=2")
    assert code == 200, text
    assert b"<IsTruncated>true</IsTruncated>" not in text
    return sorted(xml_values(text, "Key"))


def listed_versions(tmp, port, root, kind):
    """The fields of every <Version> or <DeleteMarker> (`kind`) of the bucket, as its owner
    lists them (ListObjectVersions; one page)."""
    code, text = s3_request(tmp, port, root, "GET", BUCKET, "versions")
    assert code == 200, text
    assert "<IsTruncated>true</IsTruncated>" not in text
    return [{c.tag.split("}")[-1]: c.text for c in v} for v in ET.fromstring(text).iter()
            if v.tag.split("}")[-1] == kind]


def versions_of(tmp, port, root, key):
    """[(version id, is latest)] of `key`."""
    return [(v["VersionId"], v.get("IsLatest") == "true")
            for v in listed_versions(tmp, port, root, "Version") if v.get("Key") == key]


class Peer:
    def __init__(self, name, port, root, user):
        self.name, self.port, self.root, self.user = name, port, root, user
        self.repository = f"s3:http://127.0.0.1:{port}/{BUCKET}/{PREFIX}"


@pytest.fixture
def offsite_peer(project, tmp_path):
    """The offsite host: versitygw in a container of its own, outside the project, with
    its internal IAM; the bucket (versioned) and the policy made by its root account for
    a `user` account, whose key pair is the one foundationd gets. Yields a Peer."""
    image = peer_image("FOUNDATIOND_S3_IMAGE_VERSITYGW", "tests/peers/versitygw-image")
    port = free_port()
    root = (os.urandom(10).hex(), base64.b64encode(os.urandom(30)).decode())
    user = (os.urandom(10).hex(), base64.b64encode(os.urandom(30)).decode())
    name = f"{project.name}-offsite-peer"
    envfile = tmp_path / "offsite-peer.env"
    envfile.write_text(f"ROOT_ACCESS_KEY_ID={root[0]}\nROOT_SECRET_ACCESS_KEY={root[1]}\n"
                       "VGW_IAM_DIR=/iam\n")
    os.chmod(envfile, 0o600)
    try:
        docker("run", "-d", "--name", name, "--env-file", str(envfile), "--tmpfs", "/iam",
               "-p", f"127.0.0.1:{port}:9000", image)
        def answers():
            try:
                return s3_request(tmp_path, port, root, "GET")[0] == 200
            except AssertionError:  # curl: the port is not listening yet
                return False
        wait_for(answers, "the offsite peer answering", timeout=60,
                 output=lambda: docker("logs", name, check=False).stderr)
        code, text = s3_request(tmp_path, port, root, "PUT", BUCKET)
        assert code == 200, text
        code, text = s3_request(tmp_path, port, root, "PUT", BUCKET, "versioning",
                                body='<VersioningConfiguration xmlns="http://s3.amazonaws.com/'
                                     'doc/2006-03-01/"><Status>Enabled</Status>'
                                     '</VersioningConfiguration>')
        assert code == 200, text
        # The account, by the peer's own admin CLI (root's keys from the container's
        # environment; the new account's throwaway keys on its argv, inside the peer).
        r = docker("exec", name, "versitygw", "admin", "--endpoint-url", "http://127.0.0.1:9000",
                   "create-user", "--access", user[0], "--secret", user[1], "--role", "user",
                   check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        code, text = s3_request(tmp_path, port, root, "PUT", BUCKET, "policy",
                                body=bucket_policy(user[0]))
        assert code in (200, 204), text
        yield Peer(name, port, root, user)
    finally:
        docker("rm", "-f", "-v", name, check=False)


def test_the_offsite_key_writes_and_reads_but_cannot_delete(project, tmp_path, offsite_peer):
    peer = offsite_peer
    port, root, user = peer.port, peer.root, peer.user
    passfile = tmp_path / "pass"
    passfile.write_text(PASS + "\n")
    state = tmp_path / "state"
    spec = project.write(SPEC.replace("LOCAL", str(tmp_path / "local-repo"))
                         .replace("OFFSITE", peer.repository))

    def fd(*args, stdin=None, restic=None):
        env = dict(os.environ, NO_COLOR="1")
        if restic:
            env["FOUNDATIOND_RESTIC"] = restic
        return subprocess.run([project.bin, *args, "--spec", spec, "--state-dir", str(state),
                               "--passphrase-file", str(passfile)], capture_output=True,
                              text=True, env=env, input=stdin, timeout=300)

    r = project.run("init", "--state-dir", str(state), "--passphrase-file", str(passfile),
                    "--kdf", "interactive")
    assert r.returncode == 0, r.stderr
    for field, value in zip(("key", "secret"), user):
        r = fd("secret", "set", f"offsite.{field}", stdin=value)
        assert f"credential.offsite.{field}: set (version 1)" in r.stdout, r.stdout + r.stderr

    # 1. Two backups, each copied offsite with the write-only key and confirmed there:
    # restic's lock files are created and deleted there every time.
    ids = []
    for i in range(2):
        r = fd("backup")
        assert r.returncode == 0, r.stdout + r.stderr
        backup_id = re.search(r"^backup (\S+) to ", r.stdout, re.M).group(1)
        assert re.search(rf"^offsite: backup {re.escape(backup_id)} copied to .*\(\d+ snapshots "
                         r"confirmed there\)$", r.stdout, re.M), r.stdout
        assert ("created the offsite repository" in r.stdout) == (i == 0), r.stdout
        ids.append(backup_id)
    for v in user + root:
        assert v not in r.stdout + r.stderr

    # The password as foundationd hands it to restic (fd 3), kept for the test's own restic.
    pwfile = tmp_path / "repository-password"
    keeper = tmp_path / "restic-keeps-the-password"
    keeper.write_text(f'#!/bin/sh\numask 077\ncat <&3 >"{pwfile}"\nexec restic "$@" 3<"{pwfile}"\n')
    keeper.chmod(0o755)
    r = fd("backup", "list", "--offsite", restic=str(keeper))
    assert r.returncode == 0, r.stdout + r.stderr
    for backup_id in ids:
        assert f"{backup_id}  complete" in r.stdout, r.stdout
    assert pwfile.stat().st_size > 0

    # Read access: a restore from the offsite copy (restic check first, then the section).
    r = fd("restore", "--section", "state", "--backup", ids[0], "--offsite")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed restic check" in r.stdout, r.stdout
    with open(state / f"state.db.restored-{ids[0]}", "rb") as f:
        assert f.read(16) == b"SQLite format 3\0"

    def restic_cmd(keys, *args):
        """restic on the offsite repository as `keys`' holder: (argv, environment)."""
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": keys[0],
               "AWS_SECRET_ACCESS_KEY": keys[1]}
        return (["restic", "--no-cache", "--repo", peer.repository, "--password-file",
                 str(pwfile), *args], env)

    def restic(keys, *args):
        argv, env = restic_cmd(keys, *args)
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)

    def restic_interrupted_at(keys, pattern, *args, timeout=120):
        """restic run until a line of its stderr matches `pattern`, then SIGINT; returns
        (exit code, stderr). Fails when no line matched."""
        argv, env = restic_cmd(keys, *args)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=env)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        seen, matched = [], False
        try:
            for line in proc.stderr:
                seen.append(line)
                if re.search(pattern, line):
                    matched = True
                    proc.send_signal(signal.SIGINT)
                    break
            seen.append(proc.communicate()[1])
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert matched, "".join(seen)
        return proc.returncode, "".join(seen)

    def snapshot_ids(keys):
        r = restic(keys, "snapshots", "--json")
        assert r.returncode == 0, r.stderr
        return sorted(s["id"] for s in json.loads(r.stdout))

    # 2. The repository as it is: no lock left behind (the owner sees each one restic
    # deleted as a delete marker), every kind of file there.
    objects = bucket_keys(tmp_path, port, user)
    assert not [k for k in objects if k.startswith(f"{PREFIX}/locks/")], objects
    markers = [m["Key"] for m in listed_versions(tmp_path, port, root, "DeleteMarker")]
    # At least: each backup's copy and snapshots, the second one's cat config.
    assert len(markers) >= 5, markers
    assert all(k.startswith(f"{PREFIX}/locks/") for k in markers), markers
    snapshots = snapshot_ids(user)
    assert len(snapshots) >= 4, snapshots  # two sections (state, manifest) per backup

    def first(kind):
        found = [k for k in objects if k.startswith(f"{PREFIX}/{kind}/")]
        assert found, (kind, objects)
        return found[0]

    victims = [f"{PREFIX}/config", first("keys"), first("snapshots"), first("index"),
               first("data")]

    # Deleting with the offsite key: refused, one by one and all at once.
    for key in victims:
        code, body = s3_object(tmp_path, port, user, "DELETE", key)
        assert code == 403 and b"AccessDenied" in body, (key, code, body)
    multi = ("<Delete>" + "".join(f"<Object><Key>{k}</Key></Object>" for k in victims) +
             "</Delete>")
    md5 = base64.b64encode(hashlib.md5(multi.encode()).digest()).decode()
    code, body = s3_object(tmp_path, port, user, "POST", "", query="delete=",
                           upload=multi.encode(), headers=[f"Content-MD5: {md5}"])
    assert code == 200, (code, body)  # DeleteObjects answers key by key: each one refused
    assert xml_values(body, "Deleted") == [], body
    assert xml_values(body, "Code") == ["AccessDenied"] * len(victims), body
    # A version, the policy, the versioning: out of its reach too.
    [(version, _)] = versions_of(tmp_path, port, root, first("snapshots"))
    code, body = s3_object(tmp_path, port, user, "DELETE", first("snapshots"),
                           query="versionId=" + urllib.parse.quote(version, safe=""))
    assert code == 403, (code, body)
    code, text = s3_request(tmp_path, port, user, "DELETE", BUCKET, "policy")
    assert code == 403, text
    code, text = s3_request(tmp_path, port, user, "PUT", BUCKET, "versioning",
                            body='<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/'
                                 '2006-03-01/"><Status>Suspended</Status>'
                                 '</VersioningConfiguration>')
    assert code == 403, text
    code, text = s3_request(tmp_path, port, root, "GET", BUCKET, "versioning")
    assert code == 200 and xml_values(text, "Status") == ["Enabled"], text
    assert bucket_keys(tmp_path, port, user) == objects

    # restic's own forget --prune with the offsite key: its delete of a snapshot file is
    # refused. restic 0.14 retries a failed delete 10 times with a growing backoff (about a
    # minute) before it exits 1; the test waits for the first refusal in its report, then
    # interrupts it (SIGINT: restic removes its lock, exits 130). Every snapshot stays.
    code, err = restic_interrupted_at(user, r"^Remove\(<snapshot/[0-9a-f]+>\) returned error, "
                                            r"retrying after .*: Access Denied",
                                      "forget", "--keep-last", "1", "--prune")
    assert code == 130, err  # restic's exit on SIGINT, after removing its lock
    assert snapshot_ids(user) == snapshots
    assert bucket_keys(tmp_path, port, user) == objects  # its lock removed, nothing else
    r = fd("backup", "list", "--offsite")
    assert r.returncode == 0, r.stdout + r.stderr
    for backup_id in ids:
        assert f"{backup_id}  complete" in r.stdout, r.stdout

    # 3. An overwrite is accepted, and versioning keeps what it replaced; the owner puts
    # the previous version back.
    victim = first("snapshots")
    code, original = s3_object(tmp_path, port, user, "GET", victim)
    assert code == 200 and original
    code, body = s3_object(tmp_path, port, user, "PUT", victim, upload=b"overwritten\n")
    assert code == 200, body
    assert s3_object(tmp_path, port, user, "GET", victim) == (200, b"overwritten\n")
    versions = versions_of(tmp_path, port, root, victim)
    assert len(versions) == 2 and [latest for _, latest in versions].count(True) == 1, versions
    [old] = [v for v, latest in versions if not latest]
    assert old == version
    code, body = s3_object(tmp_path, port, root, "GET", victim,
                           query="versionId=" + urllib.parse.quote(old, safe=""))
    assert code == 200 and body == original, (code, body[:200])
    code, body = s3_object(tmp_path, port, root, "PUT", victim, upload=original)
    assert code == 200, body
    assert snapshot_ids(user) == snapshots

    # 4. The offsite host's owner prunes with its own key.
    r = restic(root, "forget", "--keep-last", "1", "--prune")
    assert r.returncode == 0, r.stdout + r.stderr
    kept = snapshot_ids(root)
    assert kept and len(kept) < len(snapshots) and set(kept) <= set(snapshots), kept
    r = fd("backup", "list", "--offsite")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{ids[1]}  complete" in r.stdout and ids[0] not in r.stdout, r.stdout
