#!/usr/bin/env python3
"""Write N Calico Enterprise `flows.log` lines quickly, for import-rate measurements and load tests.

Not a model of a cluster (that is `gen_flows.py`'s job): a fixed set of endpoint pairs of a small
shop, each rendered once as a JSON template, then stamped with a time, counts and, at aggregation
levels 0 and 1, addresses and ports. Every connection appears twice, as Felix writes it: once with
`reporter: src`, once with `reporter: dst`. Deterministic for a given seed.

Usage:
    python scripts/gen_calico.py --flows 1000000 --out /tmp/flows.log [--level 2] [--gzip]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path
from typing import IO

START = 1795168800  # 2026-11-20T10:00:00Z
INTERVAL = 300  # flowLogsFlushInterval default

# (source workload, namespace, labels), (dest workload, namespace, labels, port, service), proto
_PODS = {
    "frontend": ("shop", "frontend-7d9f8b6c5d", ["app=frontend", "tier=web", "pod-template-hash=7d9f8b6c5d"]),
    "checkout": ("shop", "checkout-5c8d9f7b6d", ["app=checkout", "pod-template-hash=5c8d9f7b6d"]),
    "cart": ("shop", "cart-6f7c9d8b5c", ["app=cart", "tier=backend", "pod-template-hash=6f7c9d8b5c"]),
    "catalog": ("shop", "catalog-84d6b7c9f5", ["app.kubernetes.io/name=catalog", "app.kubernetes.io/component=api"]),
    "api": ("payments", "api-9b8c7d6f5g", ["app.kubernetes.io/name=api", "app.kubernetes.io/component=server"]),
    "coredns": ("kube-system", "coredns-6d4b75cb6d", ["k8s-app=kube-dns", "pod-template-hash=6d4b75cb6d"]),
}
_PAIRS = (
    ("frontend", "checkout", 8080, "checkout", 80, "tcp"),
    ("frontend", "cart", 7070, "cart", 7070, "tcp"),
    ("frontend", "catalog", 3550, "catalog", 3550, "tcp"),
    ("checkout", "cart", 7070, "cart", 7070, "tcp"),
    ("checkout", "api", 8443, "api", 8443, "tcp"),
    ("frontend", "coredns", 53, "kube-dns", 53, "udp"),
    ("checkout", "coredns", 53, "kube-dns", 53, "udp"),
)
_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"


def _endpoint(prefix: str, workload: str, level: int) -> dict[str, object]:
    namespace, base, labels = _PODS[workload]
    return {
        f"{prefix}_ip": "%(" + prefix + "_ip)s" if level < 2 else None,
        f"{prefix}_name": "%(" + prefix + "_name)s" if level < 2 else "-",
        f"{prefix}_name_aggr": f"{base}-*",
        f"{prefix}_namespace": namespace,
        f"{prefix}_type": "wep",
        f"{prefix}_labels": {"labels": labels},
    }


def _template(pair: tuple[str, str, int, str, int, str], reporter: str, level: int) -> str:
    client, server, port, service, service_port, proto = pair
    record: dict[str, object] = {"start_time": "%(start)d", "end_time": "%(end)d"}
    record.update(_endpoint("source", client, level))
    record["source_port"] = "%(sport)d" if level == 0 else None
    record.update(_endpoint("dest", server, level))
    record.update(
        {
            "dest_service_namespace": _PODS[server][0],
            "dest_service_name": service,
            "dest_service_port": proto,
            "dest_service_port_num": service_port,
            "dest_port": port if level < 3 else None,
            "proto": proto,
            "action": "allow",
            "reporter": reporter,
            "policies": {"enforced_policies": [f"0|default|{_PODS[server][0]}/knp.default.{server}|allow|0"]},
            "bytes_in": "%(bytes_in)d",
            "bytes_out": "%(bytes_out)d",
            "num_flows": "%(flows)d",
            "num_flows_started": "%(started)d",
            "num_flows_completed": "%(completed)d",
            "packets_in": "%(packets)d",
            "packets_out": "%(packets)d",
            "process_name": "-",
            "dest_domains": None,
        }
    )
    text = json.dumps(record, separators=(",", ":"))
    # Numbers were written as quoted placeholders; unquote them so the line is valid JSON with integers.
    for name in ("start", "end", "sport", "bytes_in", "bytes_out", "flows", "started", "completed", "packets"):
        text = text.replace(f'"%({name})d"', f"%({name})d")
    return text.replace("%", "%%").replace("%%(", "%(") + "\n"


def write(out: IO[str], flows: int, level: int, seed: int, per_interval: int = 5000) -> int:
    """Write `flows` lines (src and dst copies of flows/2 connections), about `per_interval` lines per
    5-minute export interval (a busy node); returns the lines written."""
    rng = random.Random(seed)
    templates = [(_template(p, "src", level), _template(p, "dst", level)) for p in _PAIRS]
    names = {
        w: [f"{base}-{''.join(rng.choice(_SUFFIX) for _ in range(5))}" for _ in range(3)]
        for w, (_, base, _) in _PODS.items()
    }
    ips = {name: f"10.244.{rng.randrange(1, 4)}.{rng.randrange(2, 250)}" for pods in names.values() for name in pods}
    written = 0
    interval = 0
    while written < flows:
        start = START + interval * INTERVAL
        for step in range(max(per_interval // 2, 1)):
            if written >= flows:
                break
            pair_index = step % len(_PAIRS)
            pair = _PAIRS[pair_index]
            client, server = names[pair[0]][rng.randrange(3)], names[pair[1]][rng.randrange(3)]
            count = rng.randrange(1, 50)
            values = {
                "start": start,
                "end": start + INTERVAL,
                "source_ip": ips[client],
                "source_name": client,
                "dest_ip": ips[server],
                "dest_name": server,
                "sport": rng.randrange(32768, 61000),
                "bytes_in": count * 900,
                "bytes_out": count * 300,
                "flows": count,
                "started": count,
                "completed": count,
                "packets": count * 6,
            }
            for template in templates[pair_index]:
                out.write(template % values)
                written += 1
        interval += 1
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=100_000, help="lines to write")
    parser.add_argument("--out", required=True, help="output file (- for stdout)")
    parser.add_argument("--level", type=int, choices=(0, 1, 2, 3), default=2, help="Felix aggregation level")
    parser.add_argument("--gzip", action="store_true", help="gzip the output")
    parser.add_argument("--per-interval", type=int, default=5000, help="lines per 5-minute interval")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    if args.out == "-":
        written = write(sys.stdout, args.flows, args.level, args.seed, args.per_interval)
    elif args.gzip:
        with gzip.open(Path(args.out), "wt", compresslevel=1) as out:
            written = write(out, args.flows, args.level, args.seed, args.per_interval)
    else:
        with Path(args.out).open("w") as out:
            written = write(out, args.flows, args.level, args.seed, args.per_interval)
    print(f"wrote {written:,} lines in {time.perf_counter() - began:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
