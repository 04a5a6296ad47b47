#!/usr/bin/env python3
"""Backup and restore benchmark (docs/dr.md "Figures"): foundationd against the raw floor.

A real PostgreSQL (tests/peers/postgres-image) is filled with SIZE MiB of incompressible
rows (md5 of random(), hex-decoded: neither pg_dump's compression nor restic's can shrink
them). Then, in the same run, on the same disk:

  floor, backup    `pg_dump -Fc` of the database, through `docker exec`, into a file (cat):
                   the producer alone, no encryption, no deduplication
  floor, volume    `tar c` of the data volume into a file, then `tar x` of it into a new
                   volume (the bytes of the database read and written once each)
  backup           `foundationd backup`: every section (globals, each database, the state,
                   the manifest) into restic in a local directory, then `restic copy` to a
                   second directory standing for the offsite mount; per section from the
                   run's record
  restore          the container and its volume destroyed, `apply --once` re-creates them
                   empty, `foundationd restore --section postgres/bench` (restic check,
                   every section read back and compared before anything is written, then
                   pg_restore, row counts compared)
  rebuild          from nothing but the state: apply --once + the restore, timed as one

Prints each figure (median of RUNS), MiB/s, and the ratios against the floor.

  FOUNDATIOND_POSTGRES_IMAGE=<image> tests/bench/backup_bench.py --bin build/daemon/foundationd \\
      [--size-mib 1024] [--runs 3]
Needs a Docker engine, Debian's restic, and the PostgreSQL test image.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PROJECT = "bench-backup"
PASS = "correct horse battery staple"


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


def clean():
    ids = sh(["docker", "ps", "-aq", "--filter", f"label=foundationd.project={PROJECT}"]).stdout.split()
    if ids:
        sh(["docker", "rm", "-f", *ids])
    for v in (f"{PROJECT}-pgdata", f"{PROJECT}-floor"):
        sh(["docker", "volume", "rm", v], check=False)
    sh(["docker", "network", "rm", f"{PROJECT}-net"], check=False)


def write_spec(d, pg_image):
    with open(os.path.join(d, "VERSIONS"), "w") as f:
        f.write(f'[images]\npostgres = "{pg_image}"\n')
    spec = os.path.join(d, "bench.toml")
    with open(spec, "w") as f:
        f.write(f"""spec_version = 1
project = "{PROJECT}"
versions = "VERSIONS"

[credentials.pg-super]
[credentials.pg-super.fields]
password = {{ generate = "password", length = 24 }}

[networks.{PROJECT}-net]
[volumes.{PROJECT}-pgdata]

[containers.{PROJECT}-pg]
image = "${{versions.postgres}}"
networks = ["{PROJECT}-net"]
volumes = ["{PROJECT}-pgdata:/var/lib/postgresql/data"]
env = {{ POSTGRES_PASSWORD_FILE = "/run/secrets/pg-super" }}
secret_files = {{ "/run/secrets/pg-super" = "${{credentials.pg-super.password}}" }}
healthcheck = {{ test = ["CMD-SHELL", "pg_isready -U postgres -q"], interval = "1s", timeout = "3s", retries = 120 }}
stop_timeout = "30s"

[postgres.bench]
container = "{PROJECT}-pg"
superuser = "postgres"
[postgres.bench.databases.benchdb]
owner = "postgres"

[backup.local]
path = "{d}/repo"
[backup.offsite]
path = "{d}/offsite"
""")
    return spec


def psql(sql, db="benchdb"):
    return sh(["docker", "exec", "-i", "-u", "postgres", f"{PROJECT}-pg", "psql", "-X", "-q", "-At",
               "-v", "ON_ERROR_STOP=1", "-d", db], input=sql).stdout.strip()


def fill(size_mib):
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


def mib_s(nbytes, seconds):
    return nbytes / 1048576 / seconds if seconds > 0 else float("inf")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    fd = os.path.abspath(args.bin)
    pg_image = os.environ.get("FOUNDATIOND_POSTGRES_IMAGE") or sh(
        [os.path.join(os.path.dirname(__file__), "..", "peers", "postgres-image")]).stdout.strip()
    d = tempfile.mkdtemp(prefix="fd-backup-bench-")
    state = os.path.join(d, "state")
    passfile = os.path.join(d, "pass")
    with open(passfile, "w") as f:
        f.write(PASS + "\n")
    spec = write_spec(d, pg_image)
    common = ["--spec", spec, "--state-dir", state, "--passphrase-file", passfile]
    clean()
    try:
        sh([fd, "init", "--state-dir", state, "--passphrase-file", passfile, "--kdf", "interactive"])
        sh([fd, "apply", "--once", *common])
        print(f"filling {args.size_mib} MiB of incompressible rows...", flush=True)
        t0 = time.perf_counter()
        db_bytes = fill(args.size_mib)
        print(f"  database: {db_bytes / 1048576:.0f} MiB on disk, filled in {time.perf_counter() - t0:.0f} s")
        fingerprint = psql("SELECT count(*) || ':' || md5(string_agg(md5(body), '' ORDER BY id)) FROM blobs;")

        fig = {k: [] for k in ("floor_dump", "floor_tar", "floor_untar", "backup", "offsite",
                               "restore", "rebuild")}
        sections = {}
        dump_bytes = 0
        for run in range(args.runs):
            # The floors.
            dump = os.path.join(d, "floor.dump")
            with open(dump, "wb") as out:
                t0 = time.perf_counter()
                subprocess.run(["docker", "exec", "-u", "postgres", f"{PROJECT}-pg", "pg_dump", "-Fc",
                                "-d", "benchdb"], stdout=out, check=True)
                out.flush()
                os.fsync(out.fileno())
                fig["floor_dump"].append(time.perf_counter() - t0)
            dump_bytes = os.path.getsize(dump)
            os.unlink(dump)
            tarball = os.path.join(d, "floor.tar")
            with open(tarball, "wb") as out:
                t0 = time.perf_counter()
                subprocess.run(["docker", "run", "--rm", "-v", f"{PROJECT}-pgdata:/d:ro", pg_image,
                                "tar", "cf", "-", "-C", "/d", "."], stdout=out, check=True)
                out.flush()
                os.fsync(out.fileno())
                fig["floor_tar"].append(time.perf_counter() - t0)
            with open(tarball, "rb") as inp:
                t0 = time.perf_counter()
                subprocess.run(["docker", "run", "--rm", "-i", "-v", f"{PROJECT}-floor:/d", pg_image,
                                "sh", "-c", "tar xf - -C /d && sync"], stdin=inp, check=True)
                fig["floor_untar"].append(time.perf_counter() - t0)
            os.unlink(tarball)
            sh(["docker", "volume", "rm", f"{PROJECT}-floor"])

            # foundationd backup (local + offsite), per section from its record.
            took, r = timed([fd, "backup", "--json", *common])
            rec = json.loads(r.stdout)
            assert rec["ok"] and rec["offsite"] == "confirmed", rec
            in_sections = sum(s["seconds"] for s in rec["sections"])
            fig["backup"].append(took)
            fig["offsite"].append((rec["finished_ms"] - rec["started_ms"]) / 1000 - in_sections)
            for s in rec["sections"]:
                sections.setdefault(s["name"], []).append((s["seconds"], s["bytes"]))

            # Lose the database; rebuild it from the backup.
            sh(["docker", "rm", "-f", f"{PROJECT}-pg"])
            sh(["docker", "volume", "rm", f"{PROJECT}-pgdata"])
            t0 = time.perf_counter()
            sh([fd, "apply", "--once", *common])
            took, _ = timed([fd, "restore", "--section", "postgres/bench", *common])
            fig["rebuild"].append(time.perf_counter() - t0)
            fig["restore"].append(took)
            assert psql("SELECT count(*) || ':' || md5(string_agg(md5(body), '' ORDER BY id)) FROM blobs;") \
                == fingerprint, "the restored rows differ"
            print(f"  run {run + 1}/{args.runs} done", flush=True)

        med = {k: statistics.median(v) for k, v in fig.items()}
        print(f"\nbackup bench: PostgreSQL database of {db_bytes / 1048576:.0f} MiB "
              f"(pg_dump -Fc: {dump_bytes / 1048576:.0f} MiB), median of {args.runs} runs\n")
        print(f"  {'phase':44} {'seconds':>9} {'MiB/s':>8}  ratio")
        rows = [
            ("floor: pg_dump -Fc into a file", med["floor_dump"], dump_bytes, None),
            ("floor: tar of the data volume into a file", med["floor_tar"], db_bytes, None),
            ("floor: tar x into a new volume", med["floor_untar"], db_bytes, None),
            ("backup: every section into restic (local)", med["backup"] - med["offsite"], dump_bytes,
             (med["backup"] - med["offsite"]) / med["floor_dump"]),
            ("backup: restic copy to the offsite target", med["offsite"], dump_bytes, None),
            ("backup: whole command", med["backup"], dump_bytes, med["backup"] / med["floor_dump"]),
            ("restore: check, read back, pg_restore", med["restore"], dump_bytes,
             med["restore"] / med["floor_untar"]),
            ("rebuild: apply --once + restore", med["rebuild"], dump_bytes,
             med["rebuild"] / (med["floor_tar"] + med["floor_untar"])),
        ]
        for name, secs, nbytes, ratio in rows:
            r = f"{ratio:5.2f}x" if ratio is not None else "     -"
            print(f"  {name:44} {secs:9.2f} {mib_s(nbytes, secs):8.1f}  {r}")
        print("\n  ratios: backup (local) and the whole command against the pg_dump floor; restore "
              "against tar x; rebuild against tar c + tar x")
        print("\n  sections of the backup (median seconds, bytes):")
        for name, xs in sorted(sections.items()):
            print(f"    {name:40} {statistics.median(s for s, _ in xs):8.2f} s "
                  f"{statistics.median(b for _, b in xs) / 1048576:10.1f} MiB")
    finally:
        clean()
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run(["rm", "-rf", f"/run/foundationd/secrets/{PROJECT}-pg"])


if __name__ == "__main__":
    main()
