#!/usr/bin/env python3
"""Load benchmark of reporter-vault on its embedded default (SQLite + local keyring).

Starts the release binary on a fresh data directory, seeds pseudonyms, drives
POST /v1/reporters and GET /v1/pseudonyms/{p} with wrk at several connection counts, and
records requests/s, latency percentiles, CPU and peak RSS of the server process. Writes
tests/bench/results/latest.json and latest.md (a Markdown table for the README).

Usage: tests/bench/run [--duration 10] [--connections 1,8,32] [--engine sqlite|postgres]
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "bench"
BIN = ROOT / "target" / "release" / "reporter-vault"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid: int):
    """(cpu seconds, peak RSS KiB) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return cpu, hwm


def to_ms(v: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    if not m:
        return float("nan")
    n, unit = float(m.group(1)), m.group(2)
    return {"us": n / 1000, "ms": n, "s": n * 1000}[unit]


def run_wrk(script: str, url: str, conns: int, duration: int, env: dict) -> dict:
    threads = min(2, conns)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", "-s", str(BENCH / script), url],
        capture_output=True, text=True, env=env, check=True,
    )
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = {}
    for p in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{p}%\s+(\S+)", text, re.M)
        lat[p] = to_ms(m.group(1)) if m else None
    total = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = int(re.search(r"non2xx=(\d+)", out.stderr).group(1)) if "non2xx" in out.stderr else 0
    sock_err = re.search(r"Socket errors: (.*)", text)
    return {"rps": rps, "p50_ms": lat["50"], "p99_ms": lat["99"], "requests": total,
            "non_2xx": non2xx, "socket_errors": sock_err.group(1) if sock_err else None}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", default="1,8,32")
    ap.add_argument("--engine", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--seed", type=int, default=2000, help="pseudonyms sealed before lookups")
    args = ap.parse_args()
    if not BIN.exists():
        print("build first: cargo build --release --locked", file=sys.stderr)
        return 1
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 1

    data = Path(tempfile.mkdtemp(prefix="rv-bench-"))
    port = free_port()
    env = dict(os.environ, RV_LOG_FORMAT="json", RUST_LOG="warn")
    dbname = None
    if args.engine == "postgres":
        dbname = f"rv_bench_{os.getpid()}"
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {dbname}"], check=True)
        env["RV_DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{dbname}"
        pw = data.parent / f"rv-bench-pass-{os.getpid()}"
        pw.write_text("bench passphrase, not a secret")
        pw.chmod(0o600)
        env["RV_KEYRING_PASSPHRASE_FILE"] = str(pw)
    server = subprocess.Popen(
        [str(BIN), "serve", "--demo", "--data-dir", str(data), "--listen", f"127.0.0.1:{port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(data.parent / f"rv-bench-{port}.log", "w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                if (data / "demo-tokens.json").exists():
                    break
            except OSError:
                pass
            time.sleep(0.1)
        tokens = json.loads((data / "demo-tokens.json").read_text())
        token = tokens["case_system"]["token"]
        wenv = dict(os.environ, RV_TOKEN=token)

        # Seed pseudonyms for the lookup scenario.
        pfile = data / "pseudonyms.txt"
        with open(pfile, "w") as out:
            for i in range(args.seed):
                body = json.dumps({
                    "jurisdiction": "140100", "case_ref": f"SEED-{i}",
                    "received_at": "2026-11-20T08:00:00+08:00", "channel": "web",
                    "employee_of_reported_unit": False, "identity": {"name": "测试人", "phone": f"139{i:08d}"},
                }).encode()
                req = urllib.request.Request(base + "/v1/reporters", data=body, method="POST", headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                out.write(json.loads(urllib.request.urlopen(req).read())["pseudonym"] + "\n")
        wenv["RV_PSEUDONYMS"] = str(pfile)

        results = []
        for scenario, script, path in (("seal", "seal.lua", "/v1/reporters"),
                                       ("lookup", "lookup.lua", "/v1/pseudonyms")):
            for c in [int(x) for x in args.connections.split(",")]:
                cpu0, _ = proc_stat(server.pid)
                t0 = time.monotonic()
                r = run_wrk(script, base, c, args.duration, wenv)
                wall = time.monotonic() - t0
                cpu1, hwm = proc_stat(server.pid)
                r.update(scenario=scenario, connections=c, cpu_percent=round(100 * (cpu1 - cpu0) / wall, 1),
                         peak_rss_mib=round(hwm / 1024, 1))
                results.append(r)
                print(f"{scenario:7} c={c:<4} {r['rps']:>9.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                      f"p99 {r['p99_ms']:.2f} ms  cpu {r['cpu_percent']}%  rss {r['peak_rss_mib']} MiB  "
                      f"non-2xx {r['non_2xx']}", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        if dbname:
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {dbname}"])
        shutil.rmtree(data, ignore_errors=True)

    cpu_model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    machine = {"cpus": os.cpu_count(), "cpu_model": cpu_model, "kernel": platform.release(),
               "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}
    doc = {"engine": args.engine, "duration_s": args.duration, "machine": machine,
           "date": time.strftime("%Y-%m-%d"), "results": results}
    outdir = BENCH / "results"
    outdir.mkdir(exist_ok=True)
    (outdir / f"latest-{args.engine}.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [f"Engine: {args.engine}; {machine['cpus']} × {cpu_model}, {machine['mem_gib']} GiB; "
             f"wrk {args.duration} s per row; {doc['date']}.", "",
             "| scenario | connections | req/s | p50 ms | p99 ms | server CPU % | peak RSS MiB | non-2xx |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['scenario']} | {r['connections']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['cpu_percent']} | {r['peak_rss_mib']} | {r['non_2xx']} |")
    (outdir / f"latest-{args.engine}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
