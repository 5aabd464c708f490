"""``python -m stack.footprint``: measure the call state's footprint in Redis while calls run.

    python -m stack.footprint --redis redis://127.0.0.1:6390/0 [--seconds 60] [--every 2]

Samples every ``--every`` seconds for ``--seconds``: the live calls (``warmline:call:*`` keys), every
``warmline:*`` key's ``MEMORY USAGE`` (Redis's own per-key accounting: value, key, overhead), and
``INFO memory`` ``used_memory`` against the first sample (the baseline, taken before the calls
start). Prints one line per sample, then bytes of state per live call two ways, at the sample where
it was largest among those with at least half the peak number of calls (a call's state grows with
its turns: the history and one record per turn).
Read-only (SCAN, MEMORY USAGE, INFO); fine on a live deployment at this scale, not a hot path.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import redis

PREFIX = "warmline:"


def sample(r: redis.Redis) -> dict[str, int]:
    keys = list(r.scan_iter(match=PREFIX + "*", count=1000))
    calls = sum(1 for k in keys if k.startswith(PREFIX + "call:"))
    usage = 0
    for key in keys:
        usage += r.memory_usage(key, samples=0) or 0  # a key may expire between SCAN and here
    return {"keys": len(keys), "calls": calls, "usage": usage, "used_memory": int(r.info("memory")["used_memory"])}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.footprint", description=__doc__.split("\n")[0])
    parser.add_argument("--redis", required=True, help="the deployment's WARMLINE_STATE_URL")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=2.0)
    args = parser.parse_args(argv)
    r = redis.Redis.from_url(args.redis, decode_responses=True, socket_timeout=5)
    base = sample(r)
    print(f"baseline: {base['keys']} keys, used_memory {base['used_memory']} B", flush=True)
    samples: list[dict[str, int]] = []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        time.sleep(args.every)
        now = sample(r)
        print(f"calls {now['calls']:>4}  keys {now['keys']:>5}  MEMORY USAGE sum {now['usage']:>9} B  "
              f"used_memory +{now['used_memory'] - base['used_memory']:>9} B", flush=True)
        samples.append(now)
    most = max((s["calls"] for s in samples), default=0)
    busy = [s for s in samples if s["calls"] and s["calls"] >= most / 2]
    if not busy:
        print("no live calls seen", file=sys.stderr)
        return 1
    usage = max(busy, key=lambda s: s["usage"] / s["calls"])
    grown = max(busy, key=lambda s: (s["used_memory"] - base["used_memory"]) / s["calls"])
    print(f"peak {most} live calls; per live call at most {usage['usage'] / usage['calls']:,.0f} B by MEMORY USAGE "
          f"({usage['keys'] / usage['calls']:.1f} keys per call), "
          f"{(grown['used_memory'] - base['used_memory']) / grown['calls']:,.0f} B by used_memory growth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
