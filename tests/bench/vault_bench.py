#!/usr/bin/env python3
"""Benchmark: time from POST /v1/unseal to Vault unsealed, and to converged.

Runs the real stack of tests/e2e/test_vault.py (foundationd serve + an OpenBao
container from tests/peers/openbao-image, file storage): one first boot, then
N rounds of POST /v1/seal (state locked, Vault sealed) followed by POST
/v1/unseal, timing (a) the unseal call itself (Argon2id "interactive" + the
threshold of keys submitted), (b) until Vault's own seal-status says unsealed,
(c) until the daemon reports every resource converged. Prints medians.

  FOUNDATIOND_BIN=build/daemon/foundationd \
  FOUNDATIOND_OPENBAO_IMAGE=$(tests/peers/openbao-image) \
  python3 tests/bench/vault_bench.py [--rounds 7]
"""
import argparse
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "e2e"))
from test_vault import PASS, Host  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    import os
    fd_bin = os.environ["FOUNDATIOND_BIN"]
    image = os.environ["FOUNDATIOND_OPENBAO_IMAGE"]
    with tempfile.TemporaryDirectory(prefix="fdbench-vault-") as tmp:
        h = Host(fd_bin, image, pathlib.Path(tmp))
        try:
            h.init_state()
            t0 = time.monotonic()
            h.start()
            code, body = h.request("POST", "/v1/unseal", {"passphrase": PASS})
            assert code == 200, body
            h.wait(h.converged, 300, "first boot")
            first_boot = time.monotonic() - t0
            call, unsealed, converged = [], [], []
            for _ in range(args.rounds):
                code, body = h.request("POST", "/v1/seal", {}, token=h.api_token())
                assert code in (200, 204), body
                h.wait(lambda: (h.seal_status() or {}).get("sealed") is True, 30, "sealed")
                t = time.monotonic()
                code, body = h.request("POST", "/v1/unseal", {"passphrase": PASS})
                call.append(time.monotonic() - t)
                assert code == 200, body
                while (h.seal_status() or {}).get("sealed") is not False:
                    time.sleep(0.005)
                unsealed.append(time.monotonic() - t)
                while not h.converged():
                    time.sleep(0.01)
                converged.append(time.monotonic() - t)
            ms = lambda xs: f"{statistics.median(xs) * 1000:.0f} ms"  # noqa: E731
            print(f"vault bench: first boot (start -> unseal -> init/unseal/mount/policies/"
                  f"credentials converged): {first_boot:.2f} s")
            print(f"vault bench: {args.rounds} rounds, medians: POST /v1/unseal answered "
                  f"{ms(call)}; Vault unsealed {ms(unsealed)}; converged {ms(converged)}")
            print(f"vault bench: converged min {min(converged) * 1000:.0f} ms, "
                  f"max {max(converged) * 1000:.0f} ms")
        finally:
            h.cleanup()


if __name__ == "__main__":
    main()
