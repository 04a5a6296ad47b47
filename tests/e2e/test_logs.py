"""End-to-end: what `foundationd serve` writes to stderr when it is not under
journald (a pipe, as under a supervisor that is not systemd): one key=value
line per record with the time (UTC) and level first; spec warnings at warning
level, errors at error level; `api.listening` once per address; the exit
right after `serve.stopped` on SIGTERM. (Under journald the records are
structured journal entries: tests/e2e/test_systemd.py.)"""
import os
import re
import signal
import subprocess
import time

from conftest import free_port, wait_for

LINE = re.compile(r"^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                  r"level=(error|warning|notice|info|debug) event=\S+")

# One error (an unknown key) and one warning (an unpinned tag): rejected.
BAD_SPEC = """
[containers.@web]
image = "busybox:latest"
command = ["sleep", "3600"]
bogus = 1
"""


def test_lines_have_time_and_level_warnings_are_warnings_and_exit_is_prompt(project, tmp_path):
    spec = project.write(BAD_SPEC)
    sock = tmp_path / "api.sock"
    port = free_port()
    config = tmp_path / "foundationd.toml"
    config.write_text(
        f'state_dir = "{tmp_path}/state"\n'
        f'[api]\nlisten = ["unix:{sock}", "tcp:127.0.0.1:{port}"]\n'
        f'token_file = "{tmp_path}/api-token"\n'
        f'[source]\nkind = "file"\npath = "{spec}"\n')
    log = open(tmp_path / "daemon.log", "w+")
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "CREDENTIALS_DIRECTORY"):
        env.pop(k, None)
    proc = subprocess.Popen([project.bin, "serve", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)

    def output():
        log.seek(0)
        return log.read()

    try:
        wait_for(lambda: "event=serve.ready" in output(), "serve.ready", output=output)
        wait_for(lambda: "event=spec.rejected" in output(), "spec.rejected", output=output)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, output()
        took = time.monotonic() - t0
        print(f"SIGTERM to exit of an idle daemon: {took * 1000:.0f} ms")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [l for l in output().splitlines() if l.strip()]
    records = [l for l in lines if "event=" in l]
    assert records, output()
    for l in records:
        assert LINE.match(l), l
        assert not l.startswith("<"), l  # no sd-daemon prefix outside the journal
    listening = [l for l in records if " event=api.listening " in l]
    assert sorted(re.search(r"address=(\S+)", l).group(1) for l in listening) == \
        sorted([f"tcp:127.0.0.1:{port}", f"unix:{sock}"]), listening
    diags = [l for l in records if " event=spec.diagnostic " in l]
    warnings = [l for l in diags if "warning:" in l]
    errors = [l for l in diags if "error:" in l]
    assert warnings and errors, diags
    assert all(" level=warning " in l for l in warnings), warnings
    assert all(" level=error " in l for l in errors), errors
    assert records[-1].split(" event=")[1].startswith("serve.stopped"), records[-3:]
