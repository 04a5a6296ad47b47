"""End-to-end: what `foundationd serve` does with containers that exit. A job
(run = "once") runs once per config hash, however many reconciles come; a
service that keeps exiting is restarted with a growing backoff and reported
failed with its exit code and last output, and the daemon's reconcile rate
stays bounded. Counts come from the Engine's own events, never from timings."""
import json
import subprocess
import threading
import time

from conftest import docker, free_port, wait_for

SPEC = """
[containers.@migrate]
image = "${versions.busybox}"
command = ["sh", "-c", "echo migrating; echo migrated"]
run = "once"

[containers.@app]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
depends_on = { @migrate = "completed" }

[containers.@crashy]
image = "${versions.busybox}"
command = ["sh", "-c", "echo starting; echo fatal: no config; exit 3"]
"""


class Serve:
    def __init__(self, project, tmp_path):
        self.p = project
        self.port = free_port()
        self.token_file = tmp_path / "api-token"
        self.spec = project.write(SPEC)
        cfg = tmp_path / "foundationd.toml"
        cfg.write_text(
            f'state_dir = "{tmp_path / "state"}"\n'
            f'[api]\nlisten = ["tcp:127.0.0.1:{self.port}"]\n'
            f'token_file = "{self.token_file}"\n'
            f'[source]\nkind = "file"\npath = "{self.spec}"\n'
            f'[reconcile]\nresync_interval = "1h"\n')
        self.log = open(tmp_path / "daemon.log", "w+")
        self.proc = subprocess.Popen([project.bin, "serve", "--config", str(cfg)],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def request(self, method, path, token=False):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {}
        if token:
            headers["Authorization"] = "Bearer " + self.token_file.read_text().strip()
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        body = r.read().decode()
        conn.close()
        return r.status, body

    def resource(self, short):
        code, body = self.request("GET", "/v1/status")
        assert code == 200, body
        for r in json.loads(body)["resources"]:
            if r["name"] == f"{self.p.name}-{short}":
                return r
        return None

    def stop(self):
        """Stops the daemon; returns its whole output."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        out = self.output()
        self.log.close()
        return out


class StartEvents:
    """The Engine's `start` events of the project's containers, counted by container as they
    stream in (`docker events --since NOW`, kept open). Not a replay with --since/--until
    afterwards: the Engine keeps only its last 256 events for that, and a machine busy with
    other tests overflows them within the test, so the first starts were lost (a count stuck
    at 1 where 2 starts happened)."""

    def __init__(self, project):
        self.lock = threading.Lock()
        self.names = []
        self.proc = subprocess.Popen(
            ["docker", "events", "--since", f"{time.time():.6f}",
             "--filter", f"label=foundationd.project={project.name}",
             "--filter", "event=start", "--format", "{{.Actor.Attributes.name}}"],
            stdout=subprocess.PIPE, text=True)
        self.prefix = project.name + "-"
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.names.append(line.strip())

    def counts(self):
        """Container name (without the project's prefix) -> starts so far."""
        out = {}
        with self.lock:
            for name in self.names:
                short = name[len(self.prefix):]
                out[short] = out.get(short, 0) + 1
        return out

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def running(project, short):
    c = project.container(short)
    return c is not None and c["State"]["Running"]


def test_job_once_per_config_and_crash_loop_backoff(project, tmp_path):
    events = StartEvents(project)
    d = Serve(project, tmp_path)
    try:
        wait_for(lambda: running(project, "app"), "app started after the job completed",
                 output=d.output)
        seen = {}

        def crashy_failed():
            seen["crashy"] = d.resource("crashy") or {}
            return seen["crashy"].get("status") == "failed"
        wait_for(crashy_failed, "crashy reported failed", output=d.output)
        crashy = seen["crashy"]
        assert "exited with code 3 after " in crashy["reason"], crashy
        assert "last output: " in crashy["reason"], crashy
        assert "starting | fatal: no config" in crashy["reason"], crashy
        assert d.resource("migrate")["status"] == "converged"
        # More reconciles, of everything (the API) and of the job alone (a
        # Docker event on it): a completed job is not started again.
        for _ in range(3):
            code, body = d.request("POST", "/v1/reconcile", token=True)
            assert code == 202, body
            time.sleep(1)
        docker("kill", "-s", "HUP", f"{project.name}-app", check=False)  # an event, no change
        time.sleep(6)  # a window in which a loop would start crashy dozens of times
        counts = events.counts()
        assert counts.get("migrate") == 1, counts
        assert counts.get("app") == 1, counts
        # Created, restarted at once, then after 1 s, 2 s, 4 s, ... from the
        # previous start: a handful in ~10 s, where a loop made ~20 a second.
        assert 2 <= counts.get("crashy", 0) <= 7, counts
        reconciles = d.output().count("event=reconcile.start")
        print(f"starts in the window: {counts}; reconciles: {reconciles}")
        assert reconciles <= 25, (reconciles, d.output()[-3000:])

        # A new config of the job: it runs once more, and only once.
        project.write(SPEC.replace("echo migrated", "echo migrated v2"))
        code, body = d.request("POST", "/v1/reconcile", token=True)
        assert code == 202, body
        wait_for(lambda: events.counts().get("migrate") == 2,
                 "the job run again for its new config", output=d.output)
        for _ in range(2):
            d.request("POST", "/v1/reconcile", token=True)
            time.sleep(1)
        counts = events.counts()
        assert counts.get("migrate") == 2, counts
        logs = docker("logs", f"{project.name}-migrate").stdout
        assert "migrated v2" in logs
        assert running(project, "app")
    finally:
        out = d.stop()
        events.close()
    not_tmpfs = subprocess.run(["stat", "-f", "-c", "%T", "/run"], capture_output=True,
                               text=True).stdout.strip() != "tmpfs"
    assert ("event=secret_files.not_tmpfs" in out) == not_tmpfs, out[:2000]
