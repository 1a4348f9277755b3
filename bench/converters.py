"""Benchmark of the file converters: speed and memory, against a plain lxml floor measured in the same run.

Run ``python -m bench.converters``. Writes ``bench/results/converters.json`` and ``converters.md``.

- Speed: the whole CGMES 2.4.15 SmallGrid node-breaker model (every profile plus boundary) converted to
  events, objects per second; the floor is an ``iterparse`` pass over the same files that only counts
  elements (clearing them as it goes), which no converter reading the same XML can beat.
- Memory: each measurement runs in a fresh interpreter, reporting the Python heap peak (tracemalloc) and
  the process's peak resident set growth (ru_maxrss, which also sees libxml2's C allocations).
- Streaming: the SmallGrid equipment plus its steady-state-hypothesis file repeated 1, 8 and 64 times
  (every copy extends the same objects, so the index of objects does not grow). Streaming keeps the
  converter's peak flat while the file grows; a whole-tree parse (``etree.parse``) of the same file is
  shown for contrast.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SMALLGRID = DATA / "cgmes" / "2.4.15" / "SmallGrid-NodeBreaker"
GASLIB = DATA / "gas"
RESULTS = Path(__file__).resolve().parent / "results"
SOURCE = "bench"
TIME = datetime(2024, 1, 1, tzinfo=UTC)


def smallgrid_files() -> list[Path]:
    files = sorted(SMALLGRID.glob("*.xml"))
    if not files:
        raise SystemExit(f"no CGMES files in {SMALLGRID}")
    return files


# --- the workloads ------------------------------------------------------------------------------------


def floor_count(paths: list[Path]) -> int:
    """The floor: stream every element of the files and count them, clearing as we go."""
    count = 0
    for path in paths:
        for _event, element in etree.iterparse(str(path), events=("end",)):
            count += 1
            parent = element.getparent()
            if parent is not None and parent.getparent() is None:
                element.clear()
                while element.getprevious() is not None:
                    del parent[0]
    return count


def dom_count(paths: list[Path]) -> int:
    """For contrast only: parse every file into a whole tree at once (what streaming avoids)."""
    trees = [etree.parse(str(path)) for path in paths]
    return sum(1 for tree in trees for _ in tree.getroot().iter())


def convert_count(paths: list[Path]) -> int:
    from ingest.cgmes import convert_cgmes
    from ontology.loader import load_ontology

    count = 0
    for _event in convert_cgmes(paths, source=SOURCE, time=TIME, ontology=load_ontology()):
        count += 1
    return count


def read_only(paths: list[Path]) -> int:
    """Parse and merge into the index without making events (splits the converter's time)."""
    from ingest.cgmes import CgmesConverter
    from ontology.loader import load_ontology

    converter = CgmesConverter(source=SOURCE, time=TIME, ontology=load_ontology())
    converter.read(paths)
    return len(converter.index)


def gaslib_count(paths: list[Path]) -> int:
    from ingest.gaslib import convert_gaslib
    from ontology.loader import load_ontology

    ontology = load_ontology()
    return sum(1 for path in paths for _ in convert_gaslib(path, source=SOURCE, time=TIME, ontology=ontology))


def object_parts(paths: list[Path]) -> int:
    """Top-level object elements of the files (one object's parts are spread over several profiles)."""
    from ingest.cgmes import CgmesConverter
    from ontology.loader import load_ontology

    converter = CgmesConverter(source=SOURCE, time=TIME, ontology=load_ontology())
    converter.read(paths)
    return converter.stats.elements


WORKLOADS: dict[str, Callable[[list[Path]], int]] = {
    "floor_iterparse": floor_count,
    "dom_parse": dom_count,
    "convert": convert_count,
    "read_merge_only": read_only,
    "gaslib": gaslib_count,
}


# --- measuring ----------------------------------------------------------------------------------------


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _memory_child(name: str, paths: list[str]) -> dict[str, Any]:
    """Runs in a fresh interpreter: imports and ontology loaded first, so only the workload is measured."""
    from ontology.loader import load_ontology

    load_ontology()
    # Imported before the baseline so module code is not counted as the workload's memory.
    import ingest.cgmes
    import ingest.gaslib  # noqa: F401

    files = [Path(p) for p in paths]
    rss_before = _current_rss_bytes()
    tracemalloc.start()
    result = WORKLOADS[name](files)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "result": result,
        "tracemalloc_peak_bytes": peak,
        "rss_before_bytes": rss_before,
        "maxrss_bytes": maxrss_kib * 1024,
        "maxrss_growth_bytes": max(0, maxrss_kib * 1024 - rss_before),
    }


def measure_memory(name: str, paths: list[Path]) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        result: dict[str, Any] = pool.apply(_memory_child, (name, [str(p) for p in paths]))
    return result


def measure_time(name: str, paths: list[Path], repeats: int) -> dict[str, Any]:
    workload = WORKLOADS[name]
    workload(paths)  # warm-up: ontology cache, file cache, lazy imports
    times = []
    result = 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = workload(paths)
        times.append(time.perf_counter() - start)
    return {
        "result": result,
        "repeats": repeats,
        "seconds_median": statistics.median(times),
        "seconds_best": min(times),
        "seconds_all": times,
    }


def streaming_files(folder: Path, copies: int) -> list[Path]:
    """SmallGrid EQ plus one SSH file holding ``copies`` copies of the SSH body (same objects each time)."""
    eq = next(SMALLGRID.glob("*_EQ_v*.xml"))
    ssh = next(SMALLGRID.glob("*_SSH_v*.xml"))
    text = ssh.read_text(encoding="utf-8")
    header_end = text.index("</md:FullModel>") + len("</md:FullModel>")
    body_end = text.rindex("</rdf:RDF>")
    target = folder / f"SSH_x{copies}.xml"
    with target.open("w", encoding="utf-8") as out:
        out.write(text[:header_end])
        for _ in range(copies):
            out.write(text[header_end:body_end])
        out.write(text[body_end:])
    return [eq, target]


def gas_ontology_present() -> bool:
    from ingest.gaslib import GAS_NS
    from ontology.loader import load_ontology

    return load_ontology().canonical_class("pipe", GAS_NS) is not None


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_bytes = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_bytes = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    import lxml

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": memory_bytes,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "lxml": lxml.__version__,
        "platform": platform.platform(),
        # Other work on a shared machine slows every row alike; the load says how busy it was.
        "load_average_1_5_15": list(os.getloadavg()),
    }


# --- report -------------------------------------------------------------------------------------------


def _mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def write_markdown(report: dict[str, Any], path: Path) -> None:
    m = report["machine"]
    speed = report["speed"]
    memory = report["memory"]
    lines = [
        "# Converter benchmark",
        "",
        f"Run {report['run_at']} with `python -m bench.converters`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {_mib(m['memory_bytes'] or 0)} memory, "
        f"{m['implementation']} {m['python']}, lxml {m['lxml']}, {m['platform']}. "
        "The machine is shared (load average "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_1_5_15'])} at the start); numbers are medians "
        "of repeated runs, and the floor is measured in the same run so the ratio is what to compare.",
        "",
        f"## CGMES SmallGrid node-breaker ({report['input']['files']} files, "
        f"{_mib(report['input']['bytes'])}, {report['input']['elements']} XML elements)",
        "",
        "| workload | result | median s | best s | per second (median) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, unit in (
        ("floor_iterparse", "elements"),
        ("read_merge_only", "objects"),
        ("convert", "objects"),
    ):
        row = speed[name]
        lines.append(
            f"| {name} | {row['result']} {unit} | {row['seconds_median']:.3f} | {row['seconds_best']:.3f} | "
            f"{row['result'] / row['seconds_median']:,.0f} {unit}/s |"
        )
    lines += [
        "",
        f"Conversion makes **{speed['convert']['result'] / speed['convert']['seconds_median']:,.0f} "
        f"events per second**; it takes {report['convert_over_floor']:.1f}x the time of the floor "
        "(an iterparse pass that only counts elements over the same files). The files hold "
        f"{report['input']['object_parts']} object elements (parts), merged into "
        f"{speed['convert']['result']} objects: "
        f"{report['input']['object_parts'] / speed['convert']['seconds_median']:,.0f} parts per second.",
        "",
        "## Peak memory (fresh interpreter per row; ontology loaded before measuring)",
        "",
        "| workload | input | Python heap peak (tracemalloc) | RSS growth (ru_maxrss) |",
        "| --- | --- | ---: | ---: |",
    ]
    for row in memory:
        lines.append(
            f"| {row['workload']} | {row['input']} | {_mib(row['tracemalloc_peak_bytes'])} | "
            f"{_mib(row['maxrss_growth_bytes'])} |"
        )
    lines += [
        "",
        "Streaming rows: the SmallGrid equipment file plus a steady-state-hypothesis file holding the",
        "same SSH statements 1, 8 and 64 times. The objects (and so the converter's index) stay the same",
        "while the file grows, so a streaming converter's peak stays flat; a whole-tree parse grows with",
        "the file.",
        "",
    ]
    if "gaslib" in speed:
        row = speed["gaslib"]
        lines += [
            "## GasLib",
            "",
            f"GasLib-11, -40 and -134: {row['result']} objects in {row['seconds_median'] * 1000:.1f} ms "
            f"(median), {row['result'] / row['seconds_median']:,.0f} objects/s.",
            "",
        ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    files = smallgrid_files()
    report: dict[str, Any] = {
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "input": {
            "model": "CGMES 2.4.15 SmallGrid node-breaker (EQ, TP, SSH, SV, GL, EQ_BD, TP_BD)",
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
            "elements": floor_count(files),
            "object_parts": object_parts(files),
        },
        "speed": {},
        "memory": [],
    }
    for name in ("floor_iterparse", "read_merge_only", "convert"):
        print(f"timing {name} ...", flush=True)
        report["speed"][name] = measure_time(name, files, args.repeats)
    report["convert_over_floor"] = (
        report["speed"]["convert"]["seconds_median"] / report["speed"]["floor_iterparse"]["seconds_median"]
    )
    gas_files = sorted(GASLIB.glob("*/*.net"))
    if gas_files and gas_ontology_present():
        print("timing gaslib ...", flush=True)
        report["speed"]["gaslib"] = measure_time("gaslib", gas_files, args.repeats)

    for name in ("floor_iterparse", "dom_parse", "convert"):
        print(f"memory {name} ...", flush=True)
        row = measure_memory(name, files)
        report["memory"].append({"workload": name, "input": "SmallGrid, all files", **row})
    with tempfile.TemporaryDirectory() as tmp:
        for copies in (1, 8, 64):
            paths = streaming_files(Path(tmp), copies)
            size = sum(p.stat().st_size for p in paths)
            for name in ("convert", "dom_parse"):
                print(f"memory {name} EQ+SSHx{copies} ...", flush=True)
                row = measure_memory(name, paths)
                report["memory"].append(
                    {"workload": name, "input": f"EQ + SSH x{copies} ({_mib(size)})", "bytes": size, **row}
                )

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "converters.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, args.out / "converters.md")
    print((args.out / "converters.md").read_text())


if __name__ == "__main__":
    main()
