"""Instructions per ACME flow of ``certgate serve --workers 1`` over TLS, counted by callgrind
(repeatable whatever the machine's load, unlike CPU time), or of Pebble with ``--server
pebble``.

    .venv/bin/python bench/acme_callgrind.py [--server certgate|pebble] [--warmup 20]
        [--flows 100] [--keep DIR]

The server runs under ``valgrind --tool=callgrind`` (certgate: SQLite, the configuration of
bench/acme_servers.py; Pebble: Debian's, validation skipped, ``GODEBUG=asyncpreemptoff=1`` so
that the Go runtime's preemption signals do not disturb valgrind); the driver of
bench/acme_flow.py, natively, runs ``--warmup`` flows, then the counters are zeroed and
``--flows`` flows on one account are counted. ``--keep`` keeps the callgrind output (for
callgrind_annotate; Pebble's binary is stripped: ``go tool addr2line /usr/bin/pebble`` names
its addresses) in DIR.

Why Pebble too: issue #18 judges certgate's ACME CPU per flow against Pebble's. The two
counts say whether a gap in CPU time is work certgate does and Pebble does not, or the cost
per instruction of each runtime (docs/performance.md, eleventh session).
"""

from __future__ import annotations

import argparse
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

# bench/ is the script's directory, so its sibling modules import by name
from acme_flow import drive, run_loop
from acme_servers import start_certgate, start_pebble, stop


def instructions(out_dir: Path) -> dict[int, int]:
    """Instructions per thread (1: the event loop's) from the dump taken after the counted
    flows (callgrind_control's, not the one written when the server exits)."""
    found: dict[int, int] = {}
    for path in out_dir.glob("cg.*"):
        head = path.read_text(errors="replace").splitlines()[:40]
        if "desc: Trigger: dump" in head:
            thread = next((int(x.split()[1]) for x in head if x.startswith("thread:")), 1)
            found[thread] = int(next(x for x in head if x.startswith("summary:")).split()[1])
    if not found:
        raise RuntimeError(f"no dump in {out_dir}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=("certgate", "pebble"), default="certgate")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--flows", type=int, default=100)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    no_verify = ssl.create_default_context()
    no_verify.check_hostname = False
    no_verify.verify_mode = ssl.CERT_NONE
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out = tmp / "callgrind"
        out.mkdir()
        valgrind = (
            "valgrind",
            "--tool=callgrind",
            # Go's threads run whichever goroutine is ready: only their sum means anything
            f"--separate-threads={'yes' if args.server == 'certgate' else 'no'}",
            f"--callgrind-out-file={out}/cg.%p",
        )
        if args.server == "pebble":
            go_env = {"GODEBUG": "asyncpreemptoff=1"}
            proc, url = start_pebble(tmp, prefix=valgrind, env_extra=go_env, timeout=600)
        else:
            proc, url = start_certgate(tmp, 1, tls=True, prefix=valgrind, timeout=600)
        try:
            run_loop(drive(url, args.warmup, 1, no_verify, "w", flow_timeout=600))

            def zero() -> None:
                subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True)

            result = run_loop(
                drive(url, args.flows, 1, no_verify, "m", flow_timeout=600, clock_started=zero)
            )
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True)
        finally:
            stop(proc)
        assert result["errors"] == 0, result["error_samples"]
        threads = instructions(out)
        if args.keep:
            shutil.copytree(out, args.keep, dirs_exist_ok=True)
    per_flow = {t: n / args.flows / 1e6 for t, n in sorted(threads.items())}
    total = f"{args.server}: {sum(per_flow.values()):.2f} M instructions per flow"
    total += f" ({args.flows} flows)"
    if args.server == "pebble":
        print(f"{total}, all threads")
        return
    others = " ".join(f"thread {t} {m:.2f}" for t, m in per_flow.items() if t != 1)
    print(f"{total}: event loop {per_flow.get(1, 0):.2f}, {others or 'no other thread'}")


if __name__ == "__main__":
    main()
