"""Benchmark synth end to end and print one table (also written to bench-results.json).

For each size it makes a Hubble capture with the sample generator, then measures in separate
processes: the parse-only floor (the fastest JSON parser synth ships, extracting the same
fields, one core), `synth import` (flows/s, peak memory of its whole process tree, workers
included, sampled; ratio to the floor), `synth edges`, `synth generate`, the store's bytes per
flow against the raw JSON, and,
when `hubble-audit2policy` is installed, that tool's end-to-end time on the same file. A Calico
flows.log of the same size is imported too.

    python scripts/bench.py --quick          # 200k flows and a 200k-record Calico flows.log
    python scripts/bench.py                  # 200k, 1M and 10M flows (needs ~20 GB of disk)

The targets (met or not, each is reported): import at least 1.5 times the one-core orjson floor;
import plus generate at least 3 times faster than hubble-audit2policy; edges and generate under
2 s on 10M flows; every process tree under 400 MB; the store at most 1/30 of the raw JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"200k": 200_000, "1M": 1_000_000, "10M": 10_000_000}


def run(command: list[str], *, stdout: Any = subprocess.DEVNULL, cwd: str | None = None) -> dict[str, float]:
    """Run a command; its wall time, the peak of its whole process tree's RSS (summed over every
    process it starts, sampled every 20 ms), the tree's CPU time (each descendant's as last sampled),
    the largest single process's peak and its own CPU time (from wait4)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, cwd=cwd)
    sampler = TreeMemory(process.pid)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    sampler.stop()
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    own_cpu = usage.ru_utime + usage.ru_stime
    return {"seconds": elapsed, "rss_mb": sampler.peak_mb, "largest_rss_mb": usage.ru_maxrss / 1024,
            "cpu_seconds": own_cpu, "tree_cpu_seconds": own_cpu + sampler.descendants_cpu_s()}


class TreeMemory(threading.Thread):
    """Samples the summed RSS of a process and all its descendants (from /proc) until stopped, and the
    descendants' CPU time (as last seen: up to one interval of each one's end is missed)."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak_mb = pid, interval, 0.0
        self._cpu_ticks: dict[int, int] = {}
        self._done = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def run(self) -> None:
        while not self._done.is_set():
            self.peak_mb = max(self.peak_mb, self._tree_rss() / 2**20)
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def descendants_cpu_s(self) -> float:
        return sum(self._cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")

    def _tree_rss(self) -> int:
        children: dict[int, list[int]] = {}
        ticks: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    stat = Path(f"/proc/{entry.name}/stat").read_text()
                except OSError:
                    continue
                fields = stat.rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
                ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
        total, todo = 0, [self.pid]
        while todo:
            pid = todo.pop()
            todo += children.get(pid, [])
            if pid != self.pid and pid in ticks:
                self._cpu_ticks[pid] = ticks[pid]
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * self._page
            except (OSError, IndexError, ValueError):
                continue
        return total


def peak_rss_children() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def floor(path: Path, kind: str = "hubble") -> dict[str, float]:
    """Parse-only rates (records/s, one core) with orjson dicts (and, for Hubble, msgspec typed structs)."""
    result = subprocess.run([sys.executable, __file__, "_floor", kind, str(path)], capture_output=True, text=True,
                            check=True)
    rates: dict[str, float] = json.loads(result.stdout)
    return rates


def _calico_floor(path: str) -> None:
    import orjson

    start = time.perf_counter()
    n = 0
    for line in _lines(path):
        r = orjson.loads(line)
        _ = (r.get("start_time"), r.get("action"), r.get("reporter"), r.get("proto"), r.get("dest_port"),
             r.get("source_name_aggr"), r.get("source_namespace"), r.get("source_labels"), r.get("dest_name_aggr"),
             r.get("dest_namespace"), r.get("dest_labels"), r.get("num_flows"))
        n += 1
    print(json.dumps({"orjson": n / (time.perf_counter() - start)}))


def _floor(path: str) -> None:
    import orjson

    from synth.sources.hubble.fast import decode

    rates = {}
    start = time.perf_counter()
    n = 0
    for line in _lines(path):
        record = orjson.loads(line)
        flow = record.get("flow")
        if flow is None:
            continue
        s, d = flow.get("source") or {}, flow.get("destination") or {}
        _ = (flow.get("time"), flow.get("verdict"), flow.get("l4"), flow.get("IP"), flow.get("is_reply"),
             s.get("namespace"), s.get("pod_name"), s.get("labels"), d.get("namespace"), d.get("pod_name"),
             d.get("labels"))
        n += 1
    rates["orjson"] = n / (time.perf_counter() - start)
    start = time.perf_counter()
    n = 0
    for line in _lines(path):
        decoded = decode(line)
        if decoded is None:
            continue
        flow = decoded[0]
        s, d = flow.source, flow.destination
        _ = (flow.time, flow.verdict, flow.l4, flow.IP, flow.is_reply, s and s.namespace, s and s.pod_name,
             s and s.labels, d and d.namespace, d and d.pod_name, d and d.labels)
        n += 1
    rates["msgspec"] = n / (time.perf_counter() - start)
    print(json.dumps(rates))


def _lines(path: str) -> Iterator[bytes]:
    with open(path, "rb", buffering=1 << 20) as handle:  # noqa: PTH123
        yield from handle


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model or platform.processor(), "cores": cores, "python": platform.python_version(),
            "system": platform.platform()}


def bench_size(label: str, flows: int, work: Path, synth: list[str]) -> dict[str, Any]:
    source = work / f"hubble-{label}.json"
    if not source.exists():
        run([sys.executable, str(ROOT / "scripts" / "gen_flows.py"), "big", "--flows", str(flows), "--out",
             str(source)])
    store, out = work / f"store-{label}", work / f"out-{label}"
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    lines = flows
    rates = floor(source)
    imported = run([*synth, "import", "hubble", str(source), "--store", str(store)])
    edges = run([*synth, "edges", "--store", str(store), "-o", "json"])
    generated = run([*synth, "generate", "--all-namespaces", "--store", str(store), "--out", str(out)])
    raw_bytes, store_bytes = source.stat().st_size, du(store / "flows")
    row: dict[str, Any] = {
        "flows": lines,
        "raw_json_bytes": raw_bytes,
        "floor_flows_per_s": {k: round(v) for k, v in rates.items()},
        "import_seconds": round(imported["seconds"], 2),
        "import_flows_per_s": round(lines / imported["seconds"]),
        "import_vs_orjson_floor": round(lines / imported["seconds"] / rates["orjson"], 2),
        "import_vs_msgspec_floor": round(lines / imported["seconds"] / rates["msgspec"], 2),
        "import_cpu_seconds": round(imported["cpu_seconds"], 2),
        "import_rss_mb": round(imported["rss_mb"]),
        "edges_seconds": round(edges["seconds"], 2),
        "edges_rss_mb": round(edges["rss_mb"]),
        "generate_seconds": round(generated["seconds"], 2),
        "generate_rss_mb": round(generated["rss_mb"]),
        "store_bytes": store_bytes,
        "store_bytes_per_flow": round(store_bytes / lines, 1),
        "raw_to_store_ratio": round(raw_bytes / max(store_bytes, 1), 1),
    }
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    peer = shutil.which("hubble-audit2policy", path=search)
    if peer:
        peer_out = work / f"peer-{label}"
        shutil.rmtree(peer_out, ignore_errors=True)
        peer_out.mkdir()
        measured = run([peer, str(source), "-o", str(peer_out)])
        row["hubble_audit2policy_seconds"] = round(measured["seconds"], 2)
        row["hubble_audit2policy_rss_mb"] = round(measured["rss_mb"])
        end_to_end = imported["seconds"] + generated["seconds"]
        row["speedup_vs_hubble_audit2policy"] = round(measured["seconds"] / end_to_end, 2)
    return row


def bench_calico(flows: int, work: Path, synth: list[str]) -> dict[str, Any]:
    source = work / f"calico-{flows}.log"
    if not source.exists():
        run([sys.executable, str(ROOT / "scripts" / "gen_calico.py"), "--flows", str(flows), "--out", str(source)])
    store = work / "store-calico"
    shutil.rmtree(store, ignore_errors=True)
    imported = run([*synth, "import", "calico", str(source), "--store", str(store)])
    orjson_rate = floor(source, "calico")["orjson"]
    return {"flows": flows, "import_seconds": round(imported["seconds"], 2), "floor_flows_per_s": round(orjson_rate),
            "import_flows_per_s": round(flows / imported["seconds"]), "import_rss_mb": round(imported["rss_mb"]),
            "import_vs_orjson_floor": round(flows / imported["seconds"] / orjson_rate, 2)}


def table(results: dict[str, Any]) -> str:
    header = ("size", "orjson/s", "import/s", "×orjson", "tree MB", "edges s", "generate s", "gen MB", "B/flow",
              "raw÷store", "peer s", "×peer")
    rows = [header]
    for label, row in results["hubble"].items():
        rows.append((
            label, f"{row['floor_flows_per_s']['orjson']:,}", f"{row['import_flows_per_s']:,}",
            f"{row['import_vs_orjson_floor']:.2f}", str(row["import_rss_mb"]), f"{row['edges_seconds']:.2f}",
            f"{row['generate_seconds']:.2f}", str(row["generate_rss_mb"]), f"{row['store_bytes_per_flow']}",
            f"{row['raw_to_store_ratio']}", str(row.get("hubble_audit2policy_seconds", "-")),
            str(row.get("speedup_vs_hubble_audit2policy", "-")),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.rjust(widths[i]) for i, c in enumerate(r)) for r in rows]
    calico = results.get("calico")
    if calico:
        lines.append(f"calico flows.log: {calico['flows']:,} records in {calico['import_seconds']} s = "
                     f"{calico['import_flows_per_s']:,}/s, {calico['import_vs_orjson_floor']:.2f} × its orjson floor "
                     f"({calico['floor_flows_per_s']:,}/s), process tree peak {calico['import_rss_mb']} MB")
    lines.extend(targets(results))
    m = results["machine"]
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}")
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> list[str]:
    """Each target with the measured values and whether all of them meet it."""
    rows = results["hubble"]

    def line(name: str, values: list[tuple[str, float]], met: bool) -> str:
        shown = ", ".join(f"{label} {value}" for label, value in values) or "not measured"
        return f"target {name}: {shown} -> {'met' if met and values else 'NOT met'}"

    imports = [(k, r["import_vs_orjson_floor"]) for k, r in rows.items()]
    peers = [(k, r["speedup_vs_hubble_audit2policy"]) for k, r in rows.items() if "speedup_vs_hubble_audit2policy" in r]
    big = [(k, max(r["edges_seconds"], r["generate_seconds"])) for k, r in rows.items() if k == "10M"]
    memory = [(k, max(r["import_rss_mb"], r["edges_rss_mb"], r["generate_rss_mb"])) for k, r in rows.items()]
    ratio = [(k, r["raw_to_store_ratio"]) for k, r in rows.items()]
    return [
        line("import >= 1.5 x orjson floor", imports, all(v >= 1.5 for _, v in imports)),
        line("import+generate >= 3 x hubble-audit2policy", peers, all(v >= 3 for _, v in peers)),
        line("edges and generate < 2 s at 10M (slower of the two)", big, all(v < 2 for _, v in big)),
        line("process tree < 400 MB (largest of import, edges, generate)", memory, all(v < 400 for _, v in memory)),
        line("raw JSON / store >= 30", ratio, all(v >= 30 for _, v in ratio)),
    ]


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["_floor"]:
        (_floor if arguments[1] == "hubble" else _calico_floor)(arguments[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only 200k flows")
    parser.add_argument("--sizes", default=None, help="comma-separated sizes among 200k,1M,10M")
    parser.add_argument("--work", default=str(ROOT / "bench-data"), help="folder for inputs and stores")
    parser.add_argument("--out", default=str(ROOT / "bench-results.json"))
    parser.add_argument("--keep", action="store_true", help="keep generated inputs for the next run")
    options = parser.parse_args(arguments)
    sizes = ["200k"] if options.quick else (options.sizes.split(",") if options.sizes else list(SIZES))
    work = Path(options.work)
    work.mkdir(parents=True, exist_ok=True)
    synth = [sys.executable, "-m", "synth"]
    results: dict[str, Any] = {"machine": machine(), "hubble": {}}
    for label in sizes:
        print(f"… {label} flows", file=sys.stderr, flush=True)
        results["hubble"][label] = bench_size(label, SIZES[label], work, synth)
        if not options.keep:
            (work / f"hubble-{label}.json").unlink(missing_ok=True)
    calico_flows = 200_000 if options.quick else 1_000_000
    print(f"… calico {calico_flows:,} flows", file=sys.stderr, flush=True)
    results["calico"] = bench_calico(calico_flows, work, synth)
    Path(options.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    if not options.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
