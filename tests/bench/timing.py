"""Timing a command from its start to its exit, for the benchmarks.

Not subprocess.run(timeout=...): with a timeout, Python waits for the exit by
polling with sleeps of 0.5 ms, 1 ms, 2 ms ... (up to 50 ms), which added about
1 ms to a process of 2 ms here and makes a floor look slower than it is. A
watchdog kills a hung command instead, and the wait is a plain waitpid."""
import subprocess
import threading
import time


def run_timed(cmd, timeout=300, **kw):
    """Runs `cmd` (stdout and stderr captured as text, stdin from /dev/null).
    Returns (seconds, returncode, stdout, stderr)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL, **kw)
    watchdog = threading.Timer(timeout, p.kill)
    watchdog.start()
    try:
        out, err = p.communicate()
    finally:
        watchdog.cancel()
    return time.perf_counter() - t0, p.returncode, out, err
