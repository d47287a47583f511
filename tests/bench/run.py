#!/usr/bin/env python3
"""Load benchmark of reporter-vault against two baselines, side by side in one run (issue 7).

For each engine (the embedded default, SQLite with WAL and synchronous=NORMAL; and PostgreSQL,
a throwaway database):

  service     the release binary (the shipped configuration: default log filter, so one
              access-log line per request, written to a file) on a fresh data directory:
                seal    POST /v1/reporters, a new valid person per request
                lookup  GET /v1/pseudonyms/{p} over a pre-sealed set (--seed)
                quote   POST /v1/rewards/quote (no database)
                open    POST /v1/disclosures/{id}/open, each approved disclosure opened once
                        (the set is sized to the run from the seal rate, and rerun bigger if
                        a thread runs out)
  baseline A  tests/bench/baseline_a.rs (example bench-baseline-a, not shipped): minimal axum +
              sqlx with the same durability settings and pools:
                insert  one durable insert per request (same request body as seal)
                read    select by primary key over a pre-inserted set
  baseline B  (PostgreSQL) pgcrypto's pgp_sym_encrypt of the same identity JSON into a table,
              driven by pgbench -M prepared (custom script); p99 from pgbench's transaction log

at each of --connections (default 1,8,32,128), wrk --duration seconds per point. Recorded per
point: requests/s; latency p50/p90/p99/p99.9 (wrk's latency:percentile; closed loop);
errors (load.lua counts every answer outside 2xx, plus socket errors; pgbench's failed
transactions); server CPU (user+sys of all its threads, /proc/<pid>/stat, in cores);
database CPU (PostgreSQL: the postmaster, its live children and its reaped ones); CPU ms per
request (server + database); peak RSS (VmHWM, reset before each point by writing 5 to
/proc/<pid>/clear_refs, so each point has its own peak). Then the ratios (requests/s and CPU
per request, against the baselines at the same connection count) and each of the issue's
targets marked met or missed. The exit status is 0 whatever the targets say: this is a
measurement, not a test (it is non-zero only if the harness itself cannot run).

Writes tests/bench/results/<date>-<host>.json and tests/bench/results/latest.md (--quick:
<date>-<host>-quick.json and latest-quick.md, which git ignores).

PostgreSQL: by default a private cluster (initdb on a free port in the run's temporary
directory, on the same file system as the SQLite files; initdb's defaults, so fsync and
synchronous_commit on, plus max_connections=300), started and removed by the run. It lets
pgbench open 128 connections (a stock server's max_connections=100 would cap baseline B at
about 90), and its CPU is the benchmark's alone. --pg-url URL uses an existing server instead
(its max_connections may cap baseline B, noted in the table; its CPU includes other clients).
If the private cluster cannot start (no initdb), the run falls back to $RV_TEST_PG_URL or
postgres://postgres@127.0.0.1:5432/postgres and says so; --pg-private makes that an error.

Usage: tests/bench/run [--duration 10] [--quick] [--connections 1,8,32,128]
                       [--engines sqlite,postgres] [--only seal,lookup,open,quote,baseline-a,baseline-b]
                       [--pg-url URL | --pg-private] [--rust-log FILTER] [--no-build]

--only seal also runs baseline A's insert and baseline B (the seal ratios need them); --only
lookup also runs baseline A's read. Builds first (cargo build --release --locked, honouring
CARGO_TARGET_DIR; a cold release build takes about 3 minutes on 2 cores) unless --no-build;
installs wrk and postgresql-contrib with apt-get when missing and run as root.

Duration on 2 cores: --quick (1 s per point) about 2 minutes after the build; the full run
(10 s per point, 52 points, plus the approved disclosures the open scenario consumes) about
15 minutes. Sanity tests of the pure helpers: cd tests/bench && python3 -m unittest.
"""

import argparse
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import http.client
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "bench"
RESULTS = BENCH / "results"
LUA = BENCH / "load.lua"

SERVICE_SCENARIOS = ["seal", "lookup", "quote", "open"]
ALL_ONLY = SERVICE_SCENARIOS + ["baseline-a", "baseline-b"]
ENGINES = ["sqlite", "postgres"]

# The targets.
SEAL_VS_A = 0.50
LOOKUP_VS_A = 0.70
P99_MS_AT_32 = 25.0
RSS_MIB_AT_128 = 128.0

QUOTE_BODY = json.dumps({
    "jurisdiction": "370100", "industry": "hazardous_chemicals", "policy_id": None,
    "verified_on": "2026-11-01",
    "outcome": {"kind": "major_hazard", "penalty": "100000.00", "accident_level": None,
                "concealed_deaths": None, "report_grade": None, "proposed_amount": None},
    "reporter": {"employee_of_reported_unit": False, "supervisory_staff": False, "anonymous": False},
}, separators=(",", ":"))

PASSPHRASE = "bench passphrase, not a secret"
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def log(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------ identities (mirror load.lua)

REGIONS = ["110105", "310104", "440305", "370102", "510107", "330106", "420106", "320106"]
WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CHECKS = "10X98765432"
DAYS = 20000


def person(n: int):
    """Person number n -> (GB 11643 resident ID, mobile), exactly as person() in load.lua."""
    import datetime
    region = REGIONS[(n // (DAYS * 1000)) % len(REGIONS)]
    d = datetime.date(1950, 1, 1) + datetime.timedelta(days=(n // 1000) % DAYS)
    body = f"{region}{d.year:04d}{d.month:02d}{d.day:02d}{n % 1000:03d}"
    s = sum(int(c) * w for c, w in zip(body, WEIGHTS))
    return body + CHECKS[s % 11], f"13{n % 1_000_000_000:09d}"


def seal_body(n: int) -> str:
    idn, phone = person(n)
    return ('{"jurisdiction":"110105","case_ref":"BENCH-%d","received_at":"2026-11-20T08:00:00+08:00",'
            '"channel":"web","employee_of_reported_unit":false,"identity":{"name":"测试人",'
            '"id_number":"%s","phone":"%s"}}') % (n, idn, phone)


# ------------------------------------------------------------------ HTTP (setup only)

class Http:
    """One keep-alive connection per thread."""

    def __init__(self, port: int):
        self.port = port
        self.local = threading.local()

    def _conn(self):
        c = getattr(self.local, "c", None)
        if c is None:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.local.c = c
        return c

    def call(self, method: str, path: str, body=None, token=None, expect=(200, 201)):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = body.encode() if isinstance(body, str) else body
        for attempt in range(3):
            c = self._conn()
            try:
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                out = r.read()
                if r.status not in expect:
                    raise RuntimeError(f"{method} {path}: {r.status} {out[:300]!r}")
                return json.loads(out) if out else None
            except (http.client.HTTPException, ConnectionError, OSError):
                c.close()
                self.local.c = None
                if attempt == 2:
                    raise
        return None


def parallel(fn, items, workers=8, label=None):
    out = [None] * len(items)
    done = [0]
    lock = threading.Lock()
    t0 = time.monotonic()

    def one(i):
        out[i] = fn(items[i])
        with lock:
            done[0] += 1
            if label and done[0] % 5000 == 0:
                log(f"    {label}: {done[0]}/{len(items)} ({done[0] / (time.monotonic() - t0):.0f}/s)")

    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, range(len(items))))
    return out


# ------------------------------------------------------------------ processes and /proc

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stat_fields(text: str) -> list:
    """The fields of a /proc/<pid>/stat line after the command name, which may itself hold
    spaces and parentheses: index 0 is field 3 (state), 1 is ppid, 11/12 utime/stime,
    13/14 cutime/cstime (in clock ticks)."""
    return text.rsplit(")", 1)[1].split()


def proc_fields(pid: int):
    with open(f"/proc/{pid}/stat") as f:
        return stat_fields(f.read())


def proc_cpu(pid: int) -> float:
    """User + system seconds of a process (all its threads)."""
    f = proc_fields(pid)
    return (int(f[11]) + int(f[12])) / TICKS


def proc_cpu_split(pid: int):
    """(user, system) seconds of a process."""
    f = proc_fields(pid)
    return int(f[11]) / TICKS, int(f[12]) / TICKS


def proc_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def reset_hwm(pid: int) -> bool:
    """Resets the peak RSS to the current RSS (Linux >= 4.0), so each point has its own peak."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PgTree:
    """CPU seconds of a PostgreSQL server: the postmaster (with its reaped children) and every
    live child. Backends that start and end within a point are counted through the postmaster's
    cutime/cstime. Includes any other client of the same server."""

    def __init__(self, postmaster: int):
        self.pm = postmaster

    def cpu(self) -> float:
        try:
            f = proc_fields(self.pm)
        except OSError:
            return float("nan")
        total = sum(int(f[i]) for i in (11, 12, 13, 14))
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                c = proc_fields(int(d))
            except OSError:
                continue
            if int(c[1]) == self.pm:
                total += int(c[11]) + int(c[12])
        return total / TICKS


class Server:
    def __init__(self, name: str, cmd: list, env: dict, logfile: Path, port: int, stop_signal=signal.SIGTERM):
        self.name, self.port, self.logfile, self.stop_signal = name, port, logfile, stop_signal
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=open(logfile, "w"))
        self.pid = self.proc.pid

    def wait_ready(self, path="/healthz", also=None, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", path)
                ok = c.getresponse().status == 200
                c.close()
                if ok and (also is None or also()):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        tail = self.logfile.read_text(errors="replace")[-3000:] if self.logfile.exists() else ""
        raise RuntimeError(f"{self.name} did not become ready (exit {self.proc.poll()}):\n{tail}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ------------------------------------------------------------------ PostgreSQL

class Pg:
    def __init__(self, url: str):
        u = urlsplit(url)
        self.base = url
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 5432
        self.user = u.username or "postgres"

    def url(self, db: str) -> str:
        u = urlsplit(self.base)
        return urlunsplit((u.scheme, u.netloc, "/" + db, u.query, ""))

    def psql(self, sql: str, db="postgres", check=True) -> str:
        r = subprocess.run(["psql", self.url(db), "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                           capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"psql: {sql[:80]}: {r.stderr.strip()}")
        return r.stdout.strip()

    def reachable(self) -> bool:
        try:
            return self.psql("SELECT 1", check=True) == "1"
        except (RuntimeError, OSError):
            return False

    def create_db(self, name: str):
        self.psql(f"DROP DATABASE IF EXISTS {name}")
        self.psql(f"CREATE DATABASE {name}")

    def drop_db(self, name: str):
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", check=False)

    def postmaster(self) -> int | None:
        """The server's process id, if it runs on this machine and is visible."""
        try:
            data = self.psql("SHOW data_directory")
            pid = int(Path(data, "postmaster.pid").read_text().split()[0])
            proc_fields(pid)
            return pid
        except (RuntimeError, OSError, ValueError, IndexError):
            return None

    def settings(self) -> dict:
        out = {}
        for k in ("server_version", "synchronous_commit", "fsync", "wal_sync_method", "shared_buffers",
                  "max_connections", "data_directory"):
            try:
                out[k] = self.psql(f"SHOW {k}")
            except RuntimeError:
                out[k] = None
        return out

    def free_connections(self) -> int:
        try:
            mx = int(self.psql("SHOW max_connections"))
            used = int(self.psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"))
            reserved = int(self.psql("SHOW superuser_reserved_connections"))
            return mx - used - reserved
        except (RuntimeError, ValueError):
            return 90


class PrivatePg:
    """A throwaway PostgreSQL cluster (initdb) on a free port: isolates the database's CPU
    from other clients and allows pgbench at 128 clients (max_connections=300)."""

    def __init__(self, workdir: Path):
        bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bindir:
            raise RuntimeError("no /usr/lib/postgresql/*/bin for --pg-private")
        self.bin = bindir[-1]
        self.dir = workdir / "pgdata"
        self.port = free_port()
        as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.as_pg = as_pg
        workdir.chmod(0o755)
        if as_pg:
            self.dir.mkdir()
            shutil.chown(self.dir, "postgres", "postgres")
        r = subprocess.run(as_pg + [str(self.bin / "initdb"), "-D", str(self.dir), "--auth=trust", "-U", "postgres",
                                    "-E", "UTF8", "--no-instructions"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stderr.strip()[-500:]}")
        # initdb's defaults otherwise (fsync, synchronous_commit=on, shared_buffers=128MB), as a
        # stock server; the data directory is on the same file system as the SQLite files.
        r = subprocess.run(as_pg + [str(self.bin / "pg_ctl"), "-D", str(self.dir), "-w", "-t", "60",
                                    "-l", str(self.dir / "log"),
                                    "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                                          f"-c max_connections=300", "start"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            tail = (self.dir / "log").read_text(errors="replace")[-800:] if (self.dir / "log").exists() else ""
            self.stop()
            raise RuntimeError(f"pg_ctl start failed: {r.stderr.strip()[-300:]} {tail}")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self):
        subprocess.run(self.as_pg + [str(self.bin / "pg_ctl"), "-D", str(self.dir), "-m", "fast", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ------------------------------------------------------------------ load generators

def percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def run_wrk(url: str, conns: int, duration: float, env: dict, workdir: Path) -> dict:
    threads = min(2, conns)
    out = workdir / f"wrk-{time.monotonic_ns()}.json"
    e = dict(os.environ, RV_THREADS=str(threads), RV_WRK_OUT=str(out), **env)
    # wrk parses whole seconds only ("-d10.0s" is a usage error): --duration is a float.
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s", str(LUA), url]
    r = subprocess.run(cmd, capture_output=True, text=True, env=e)
    if r.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({r.returncode}): {r.stdout[-1000:]} {r.stderr[-1000:]}")
    s = json.loads(out.read_text())
    out.unlink()
    return dict(parse_wrk_summary(s), tool="wrk", command=" ".join(cmd[:-3] + ["load.lua", url]))


def parse_wrk_summary(s: dict) -> dict:
    """load.lua's done() summary -> a point's load figures. Errors: non_2xx is load.lua's own
    count of answers outside 200-299 (wrk's errors.status counts only those above 399; kept as
    status_ge_400)."""
    secs = s["duration_us"] / 1e6
    lat = s["latency_us"]
    errs = s["errors"]
    return {
        "rps": s["requests"] / secs if secs else 0.0, "requests": s["requests"], "seconds": secs,
        "latency_ms": {k: lat[k] / 1000 for k in ("p50", "p90", "p99", "p99.9", "mean", "max")},
        "non_2xx": max(errs.get("non_2xx", 0), errs["status"]), "status_ge_400": errs["status"],
        "socket_errors": {k: errs[k] for k in ("connect", "read", "write", "timeout")},
        "threads_exhausted": s.get("threads_exhausted", 0), "opened": s.get("opened", 0),
    }


PGBENCH_SCRIPT = """\\set a random(0, 99999999999)
\\set p random(0, 999999999)
INSERT INTO bench_pgcrypto (env) VALUES (pgp_sym_encrypt(format('{"name":"测试人","id_number":"110105%s","phone":"13%s"}', lpad(:a::text, 12, '0'), lpad(:p::text, 9, '0')), :key));
"""


def run_pgbench(pg: Pg, db: str, conns: int, duration: float, workdir: Path) -> dict:
    script = workdir / "pgcrypto.sql"
    script.write_text(PGBENCH_SCRIPT)
    logdir = workdir / f"pgbench-{conns}-{time.monotonic_ns()}"
    logdir.mkdir()
    threads = min(2, conns)
    cmd = ["pgbench", "-n", "-M", "prepared", "-c", str(conns), "-j", str(threads), "-T",
           str(max(1, round(duration))), "-f", str(script), "-D", f"key={PASSPHRASE}",
           "--log", "--log-prefix", str(logdir / "tx"), pg.url(db)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"pgbench failed: {r.stdout[-1500:]} {r.stderr[-1500:]}")
    log_lines = []
    for f in logdir.iterdir():
        log_lines += f.read_text().splitlines()
    shutil.rmtree(logdir, ignore_errors=True)
    out = parse_pgbench(r.stdout, log_lines)
    if out is None:
        raise RuntimeError(f"pgbench printed no tps: {r.stdout[-800:]} {r.stderr[-800:]}")
    out.update(tool="pgbench", seconds=duration,
               command=" ".join(c if "key=" not in c else "key=…" for c in cmd[:-1]) + " <db>")
    return out


def parse_pgbench(stdout: str, log_lines: list) -> dict | None:
    """pgbench's report and its per-transaction log (--log: `client tx latency_us script
    epoch_s epoch_us ...`) -> a point's load figures; None if the report has no tps line."""
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", stdout)
    if not m and "actually processed: 0" not in stdout:
        return None
    tps = float(m.group(1)) if m else 0.0
    avg = re.search(r"latency average = ([\d.]+) ms", stdout)
    failed = re.search(r"number of failed transactions: (\d+)", stdout)
    lats = []
    for line in log_lines:
        parts = line.split()
        if len(parts) >= 3 and parts[2].isdigit():
            lats.append(int(parts[2]))
    lats.sort()
    pct = {f"p{q}": percentile(lats, q) / 1000 if lats else None for q in (50, 90, 99, 99.9)}
    return {
        "rps": tps, "requests": len(lats),
        "latency_ms": {"p50": pct["p50"], "p90": pct["p90"], "p99": pct["p99"], "p99.9": pct["p99.9"],
                       "mean": float(avg.group(1)) if avg else None, "max": (lats[-1] / 1000) if lats else None},
        "non_2xx": int(failed.group(1)) if failed else 0, "socket_errors": None,
        **({} if m else {"note": "no transaction completed within -T (connecting took longer)"}),
    }


def measure(point: dict, fn, server_pid=None, pg_tree=None):
    """Runs fn (a load generator) and adds CPU, RSS and load figures to its result."""
    rss_reset = reset_hwm(server_pid) if server_pid else False
    cpu0 = proc_cpu_split(server_pid) if server_pid else None
    db0 = pg_tree.cpu() if pg_tree else None
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = os.getloadavg()
    t0 = time.monotonic()
    try:
        r = fn()
    except Exception as e:  # one failed point must not lose the run
        log(f"  {point['engine']} {point['system']} {point['scenario']} c={point['connections']}: FAILED: {e}")
        r = {"rps": 0.0, "requests": 0, "non_2xx": 0, "socket_errors": None,
             "latency_ms": {k: None for k in ("p50", "p90", "p99", "p99.9", "mean", "max")},
             "error": str(e)[:1000]}
    wall = time.monotonic() - t0
    if pg_tree:
        time.sleep(0.3)  # let the postmaster reap backends that just ended (their CPU moves to it)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    point.update(r)
    point["wall_s"] = round(wall, 3)
    point["load_before"] = [round(x, 2) for x in load0]
    point["load_after"] = [round(x, 2) for x in os.getloadavg()]
    point["client_cpu_s"] = round((ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime), 3)
    if server_pid:
        u1, s1 = proc_cpu_split(server_pid)
        cpu = (u1 - cpu0[0]) + (s1 - cpu0[1])
        point["server_user_s"] = round(u1 - cpu0[0], 3)
        point["server_sys_s"] = round(s1 - cpu0[1], 3)
        point["server_cpu_s"] = round(cpu, 3)
        point["server_cores"] = round(cpu / wall, 3)
        point["peak_rss_mib"] = round(proc_hwm_kib(server_pid) / 1024, 1)
        point["rss_peak_is_per_point"] = rss_reset
    if pg_tree:
        cpu = pg_tree.cpu() - db0
        point["db_cpu_s"] = round(cpu, 3)
        point["db_cores"] = round(cpu / wall, 3)
    point["cpu_ms_per_request"] = cpu_per_request(point)
    return point


def cpu_per_request(point: dict) -> float | None:
    """Server plus database CPU per completed request, in ms: less sensitive to a noisy,
    shared machine than requests/s (the other tenants' load slows a run down but adds no CPU
    to it). SQLite runs inside the server, so its CPU is in server_cpu_s; baseline B has only
    the database's."""
    cpu = [point.get("server_cpu_s"), point.get("db_cpu_s")]
    if not point.get("requests") or all(c is None for c in cpu):
        return None
    return round(1000 * sum(c for c in cpu if c is not None) / point["requests"], 3)


def show(p: dict):
    lat = {k: (v if v is not None else float("nan")) for k, v in p["latency_ms"].items()}
    extra = ""
    if p.get("server_cores") is not None:
        extra += f"  cpu {p['server_cores']:.2f}"
    if p.get("db_cores") is not None:
        extra += f"  db {p['db_cores']:.2f}"
    if p.get("peak_rss_mib") is not None:
        extra += f"  rss {p['peak_rss_mib']} MiB"
    log(f"  {p['engine']:8} {p['system']:10} {p['scenario']:7} c={p['connections']:<4}"
        f"{p['rps']:>9.0f} req/s  p50 {lat['p50']:.2f}  p99 {lat['p99']:.2f}  p99.9 {lat['p99.9']:.2f} ms"
        f"{extra}  errors {p['non_2xx']}{' ' + str(p['socket_errors']) if p.get('socket_errors') and any(p['socket_errors'].values()) else ''}")


# ------------------------------------------------------------------ runs

class Ctx:
    def __init__(self, args, target: Path, work: Path):
        self.args = args
        self.target = target
        self.work = work
        self.results = []
        self.notes = []
        self.id_run = 0

    def next_id_base(self) -> int:
        # Seeds use person numbers below 1,000,000; each wrk seal run gets its own million.
        self.id_run += 1
        return self.id_run * 1_000_000


def point_of(engine, system, scenario, conns, **kw):
    return dict(engine=engine, system=system, scenario=scenario, connections=conns, **kw)


def run_baseline_a(ctx: Ctx, engine: str, pg: Pg | None, pg_tree: PgTree | None):
    args = ctx.args
    want_insert = "seal" in args.only or "baseline-a" in args.only
    want_read = "lookup" in args.only or "baseline-a" in args.only
    if not (want_insert or want_read):
        return
    port = free_port()
    data = ctx.work / f"baseline-a-{engine}"
    data.mkdir()
    dbname = None
    if engine == "sqlite":
        url = f"sqlite://{data / 'bench.db'}"
    else:
        dbname = f"rv_bench_a_{os.getpid()}"
        pg.create_db(dbname)
        url = pg.url(dbname)
    exe = ctx.target / "release" / "examples" / "bench-baseline-a"
    srv = Server(f"baseline A ({engine})",
                 [str(exe), "--engine", engine, "--database-url", url, "--listen", f"127.0.0.1:{port}"],
                 dict(os.environ), data.parent / f"baseline-a-{engine}.log", port, stop_signal=signal.SIGINT)
    base = f"http://127.0.0.1:{port}"
    try:
        srv.wait_ready()
        if want_insert:
            for c in args.conns:
                p = point_of(engine, "baseline-a", "insert", c)
                env = {"RV_SCENARIO": "seal", "RV_PATH": "/v1/items", "RV_ID_BASE": str(ctx.next_id_base())}
                show(measure(p, lambda: run_wrk(base, c, args.duration, env, ctx.work), srv.pid, pg_tree))
                ctx.results.append(p)
        if want_read:
            h = Http(port)
            ids = parallel(lambda n: h.call("POST", "/v1/items", seal_body(n))["id"], list(range(args.seed)))
            idfile = data / "ids.txt"
            idfile.write_text("\n".join(ids) + "\n")
            for c in args.conns:
                p = point_of(engine, "baseline-a", "read", c)
                env = {"RV_SCENARIO": "get", "RV_PATH": "/v1/items/", "RV_IDS": str(idfile)}
                show(measure(p, lambda: run_wrk(base, c, args.duration, env, ctx.work), srv.pid, pg_tree))
                ctx.results.append(p)
    finally:
        srv.stop()
        if dbname:
            pg.drop_db(dbname)


def run_service(ctx: Ctx, engine: str, pg: Pg | None, pg_tree: PgTree | None):
    args = ctx.args
    scenarios = [s for s in SERVICE_SCENARIOS if s in args.only]
    if not scenarios:
        return
    port = free_port()
    data = ctx.work / f"service-{engine}"
    data.mkdir()
    env = dict(os.environ, RV_LOG_FORMAT="json",
               # The open scenario creates many disclosure requests from one principal.
               RV_DISCLOSURE_REQUESTS_PER_MINUTE="1000000000")
    # The shipped configuration: the default log filter (one JSON access-log line per request,
    # to a file here) unless --rust-log says otherwise; no trace export.
    for k in ("RV_DATABASE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "RUST_LOG"):
        env.pop(k, None)
    if args.rust_log:
        env["RUST_LOG"] = args.rust_log
    dbname = None
    if engine == "postgres":
        dbname = f"rv_bench_{os.getpid()}"
        pg.create_db(dbname)
        env["RV_DATABASE_URL"] = pg.url(dbname)
        pw = ctx.work / "passphrase"
        pw.write_text(PASSPHRASE)
        pw.chmod(0o600)
        env["RV_KEYRING_PASSPHRASE_FILE"] = str(pw)
    exe = ctx.target / "release" / "reporter-vault"
    srv = Server(f"reporter-vault ({engine})",
                 [str(exe), "serve", "--demo", "--data-dir", str(data), "--listen", f"127.0.0.1:{port}",
                  "--policies", str(ROOT / "policies")],
                 env, ctx.work / f"service-{engine}.log", port)
    base = f"http://127.0.0.1:{port}"
    tokens_file = data / "demo-tokens.json"
    try:
        srv.wait_ready(also=tokens_file.exists)
        tokens = json.loads(tokens_file.read_text())
        case = tokens["case_system"]["token"]
        custodian = tokens["custodian"]["token"]
        h = Http(port)
        seal_rate = {}

        pseudonyms = []
        if "lookup" in scenarios or "open" in scenarios:
            t0 = time.monotonic()
            pseudonyms = parallel(lambda n: h.call("POST", "/v1/reporters", seal_body(n), case)["pseudonym"],
                                  list(range(args.seed)))
            log(f"  sealed {len(pseudonyms)} reporters for lookups in {time.monotonic() - t0:.1f} s")
        pfile = data / "pseudonyms.txt"
        pfile.write_text("\n".join(pseudonyms) + "\n")

        for scenario in scenarios:
            for c in args.conns:
                p = point_of(engine, "service", scenario, c)
                if scenario == "seal":
                    wenv = {"RV_SCENARIO": "seal", "RV_PATH": "/v1/reporters", "RV_TOKEN": case,
                            "RV_ID_BASE": str(ctx.next_id_base())}
                elif scenario == "lookup":
                    wenv = {"RV_SCENARIO": "get", "RV_PATH": "/v1/pseudonyms/", "RV_TOKEN": case,
                            "RV_IDS": str(pfile)}
                elif scenario == "quote":
                    wenv = {"RV_SCENARIO": "quote", "RV_PATH": "/v1/rewards/quote", "RV_TOKEN": case,
                            "RV_QUOTE_BODY": QUOTE_BODY}
                else:
                    run_open_point(ctx, p, h, base, case, custodian, pseudonyms, seal_rate.get(c), srv, pg_tree, data)
                    ctx.results.append(p)
                    continue
                show(measure(p, lambda: run_wrk(base, c, args.duration, wenv, ctx.work), srv.pid, pg_tree))
                ctx.results.append(p)
                if scenario == "seal":
                    seal_rate[c] = p["rps"]
    finally:
        srv.stop()
        if dbname:
            pg.drop_db(dbname)


def approved_disclosures(h: Http, case: str, custodian: str, pseudonyms: list, n: int) -> list:
    def one(i):
        d = h.call("POST", "/v1/disclosures", json.dumps({
            "pseudonym": pseudonyms[i % len(pseudonyms)], "purpose": "verification_contact",
            "justification": "load benchmark: verify the reporter's contact details",
            "fields": ["name", "id_number", "phone"]}), case)
        h.call("POST", f"/v1/disclosures/{d['id']}/approve", '{"comment":"bench"}', custodian)
        return d["id"]
    return parallel(one, list(range(n)), label="approved disclosures")


def run_open_point(ctx, p, h, base, case, custodian, pseudonyms, seal_rps, srv, pg_tree, data):
    args = ctx.args
    c = p["connections"]
    est = seal_rps if seal_rps else 2000.0
    n = int(math.ceil(args.open_headroom * args.duration * est)) + 4 * c + 100
    for attempt in range(3):
        t0 = time.monotonic()
        try:
            ids = approved_disclosures(h, case, custodian, pseudonyms, n)
        except Exception as e:
            log(f"  open c={c}: preparing approved disclosures FAILED: {e}")
            p.update(rps=0.0, requests=0, non_2xx=0, socket_errors=None, error=f"set-up: {str(e)[:900]}",
                     latency_ms={k: None for k in ("p50", "p90", "p99", "p99.9", "mean", "max")})
            return
        log(f"  {n} approved disclosures ready in {time.monotonic() - t0:.1f} s")
        idfile = data / f"disclosures-{c}-{attempt}.txt"
        idfile.write_text("\n".join(ids) + "\n")
        wenv = {"RV_SCENARIO": "open", "RV_PATH": "/v1/disclosures/", "RV_TOKEN": case, "RV_IDS": str(idfile)}
        p.pop("note", None)
        measure(p, lambda: run_wrk(base, c, args.duration, wenv, ctx.work), srv.pid, pg_tree)
        p["disclosures_prepared"] = n
        if not p.get("threads_exhausted"):
            show(p)
            return
        log(f"  open c={c}: {n} disclosures ran out; again with {n * 3}")
        n *= 3
    p["note"] = "approved disclosures ran out: req/s understated"
    show(p)


def run_baseline_b(ctx: Ctx, pg: Pg, pg_tree: PgTree | None):
    args = ctx.args
    db = f"rv_bench_b_{os.getpid()}"
    pg.create_db(db)
    try:
        pg.psql("CREATE EXTENSION IF NOT EXISTS pgcrypto", db=db)
        pg.psql("CREATE TABLE bench_pgcrypto (id bigserial PRIMARY KEY, env bytea NOT NULL)", db=db)
        for c in args.conns:
            free = pg.free_connections() - 5
            eff = min(c, free)
            p = point_of("postgres", "baseline-b", "insert", c)
            if eff < c:
                p["note"] = f"pgbench capped at {eff} clients (server max_connections); run without --pg-url"
                log(f"  baseline B: only {free} free connections on the server: -c {eff} instead of {c}")
            p["pgbench_clients"] = eff
            show(measure(p, lambda: run_pgbench(pg, db, eff, args.duration, ctx.work), None, pg_tree))
            ctx.results.append(p)
    finally:
        pg.drop_db(db)


# ------------------------------------------------------------------ report

def find(results, engine, system, scenario, c):
    for r in results:
        if (r["engine"], r["system"], r["scenario"], r["connections"]) == (engine, system, scenario, c):
            return r
    return None


def ratios(results, conns, engines):
    out = []
    for engine in engines:
        for c in conns:
            seal = find(results, engine, "service", "seal", c)
            a_ins = find(results, engine, "baseline-a", "insert", c)
            look = find(results, engine, "service", "lookup", c)
            a_read = find(results, engine, "baseline-a", "read", c)
            b = find(results, "postgres", "baseline-b", "insert", c)
            row = {"engine": engine, "connections": c}
            if seal and a_ins and a_ins["rps"]:
                row["seal_vs_a_insert"] = seal["rps"] / a_ins["rps"]
            if seal and a_ins and seal.get("cpu_ms_per_request") and a_ins.get("cpu_ms_per_request"):
                # CPU efficiency: A's CPU per insert ÷ the service's CPU per seal (1 = as cheap).
                row["seal_vs_a_insert_cpu"] = a_ins["cpu_ms_per_request"] / seal["cpu_ms_per_request"]
            if look and a_read and look.get("cpu_ms_per_request") and a_read.get("cpu_ms_per_request"):
                row["lookup_vs_a_read_cpu"] = a_read["cpu_ms_per_request"] / look["cpu_ms_per_request"]
            if look and a_read and a_read["rps"]:
                row["lookup_vs_a_read"] = look["rps"] / a_read["rps"]
            if seal and b and b["rps"]:
                row["seal_vs_b"] = seal["rps"] / b["rps"]
            out.append(row)
    return out


def mark(ok):
    return "✅" if ok else "❌"


def targets(results, rat, conns):
    """The issue's targets, on the embedded default (SQLite) unless said otherwise."""
    t = []

    def per_c(key, test):
        got = {r["connections"]: r.get(key) for r in rat if r["engine"] == "sqlite" and r.get(key) is not None}
        return got, [c for c, v in got.items() if test(v)], [c for c, v in got.items() if not test(v)]

    for key, name, test, fmt in (
            ("seal_vs_a_insert", "sealing on the embedded default ≥ 50 % of baseline A's durable insert",
             lambda v: v >= SEAL_VS_A, lambda v: f"{100 * v:.0f} %"),
            ("seal_vs_b", "sealing on the embedded default ahead of baseline B (pgcrypto + pgbench)",
             lambda v: v > 1.0, lambda v: f"{v:.2f} ×"),
            ("lookup_vs_a_read", "lookups on the embedded default ≥ 70 % of baseline A's read",
             lambda v: v >= LOOKUP_VS_A, lambda v: f"{100 * v:.0f} %")):
        got, met, missed = per_c(key, test)
        if not got:
            continue
        ref = 32 if 32 in got else max(got)
        t.append({"target": name, "at_connections": ref, "value": got[ref], "shown": fmt(got[ref]),
                  "met": test(got[ref]), "met_at": met, "missed_at": missed})
    for engine in ("sqlite", "postgres"):
        for scen in SERVICE_SCENARIOS:
            r = find(results, engine, "service", scen, 32)
            if r and r["latency_ms"]["p99"] is not None:
                v = r["latency_ms"]["p99"]
                t.append({"target": f"p99 < 25 ms at 32 connections: {scen} ({engine})", "at_connections": 32,
                          "value": v, "shown": f"{v:.1f} ms", "met": v < P99_MS_AT_32})
    for engine in ("sqlite", "postgres"):
        rows = [r for r in results if r["engine"] == engine and r["system"] == "service"
                and r["connections"] == 128 and r.get("peak_rss_mib") is not None]
        if rows:
            worst = max(rows, key=lambda r: r["peak_rss_mib"])
            t.append({"target": f"peak RSS < 128 MiB at 128 connections ({engine}, worst scenario: "
                                f"{worst['scenario']})", "at_connections": 128, "value": worst["peak_rss_mib"],
                      "shown": f"{worst['peak_rss_mib']:.1f} MiB", "met": worst["peak_rss_mib"] < RSS_MIB_AT_128})
    return t


def fmt_num(v, nd=2):
    return "—" if v is None else f"{v:.{nd}f}"


def pct_or_dash(v):
    return "—" if v is None else f"{100 * v:.0f} %"


def markdown(doc) -> str:
    m = doc["machine"]
    res = doc["results"]
    pg = doc.get("postgres")
    lines = []
    if doc["quick"]:
        lines += ["**Quick smoke run (1 s per point): not a measurement.**", ""]
    lines += [
        f"{m['nproc']} × {m['cpu_model']}, {m['mem_gib']} GiB, Linux {m['kernel']}; {m['rustc']}; "
        f"commit {m['git_commit'][:12]}{' + uncommitted changes' if m['git_dirty'] else ''}; {doc['date']}. "
        f"Load average {m['load_before'][0]:.2f} before, {m['load_after'][0]:.2f} after. "
        f"wrk {doc['duration_s']:g} s per point (keep-alive, 2 threads; 1 at 1 connection); pgbench -M prepared -T "
        f"{max(1, round(doc['duration_s']))}. "
        f"SQLite: WAL, synchronous=NORMAL, one writer at a time (baseline A: one sqlx connection; the service: seals and opens on its group-commit writer thread, other writes on one sqlx connection). "
        + (f"PostgreSQL {(pg.get('server_version') or '?')}: "
           f"{'a private cluster (initdb defaults, max_connections=300)' if pg.get('private_cluster') else 'the server at ' + str(pg.get('url'))}, "
           f"fsync={pg.get('fsync')}, synchronous_commit={pg.get('synchronous_commit')}. " if pg else "")
        + f"reporter-vault's log filter: {doc['service_log_filter']}.",
        "",
        "| engine | system | scenario | conns | req/s | p50 ms | p99 ms | p99.9 ms | server CPU cores | "
        "DB CPU cores | CPU ms/req | peak RSS MiB | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = [("service", "seal"), ("baseline-a", "insert"), ("baseline-b", "insert"), ("service", "lookup"),
             ("baseline-a", "read"), ("service", "open"), ("service", "quote")]
    label = {("service", "seal"): "seal", ("baseline-a", "insert"): "durable insert",
             ("baseline-b", "insert"): "pgp_sym_encrypt insert", ("service", "lookup"): "pseudonym lookup",
             ("baseline-a", "read"): "read by key", ("service", "open"): "disclosure open",
             ("service", "quote"): "quote"}
    sysname = {"service": "reporter-vault", "baseline-a": "baseline A", "baseline-b": "baseline B"}
    for engine in doc["engines"]:
        for sys_, scen in order:
            for r in [x for x in res if (x["engine"], x["system"], x["scenario"]) == (engine, sys_, scen)]:
                lat = r["latency_ms"]
                errs = r["non_2xx"] + sum((r.get("socket_errors") or {}).values())
                conns = str(r["connections"])
                if r.get("pgbench_clients") and r["pgbench_clients"] != r["connections"]:
                    conns = f"{r['connections']} (ran {r['pgbench_clients']})"
                note = " ⚠" if r.get("note") or r.get("error") else ""
                lines.append(
                    f"| {engine} | {sysname[sys_]} | {label[(sys_, scen)]}{note} | {conns} | {r['rps']:.0f} | "
                    f"{fmt_num(lat['p50'])} | {fmt_num(lat['p99'])} | {fmt_num(lat['p99.9'])} | "
                    f"{fmt_num(r.get('server_cores'))} | {fmt_num(r.get('db_cores'))} | "
                    f"{fmt_num(r.get('cpu_ms_per_request'), 3)} | {fmt_num(r.get('peak_rss_mib'), 1)} | {errs} |")
    rat = doc["ratios"]
    if any(len(r) > 2 for r in rat):
        lines += ["", "Ratios (reporter-vault ÷ baseline, requests/s at the same connection count; the CPU "
                  "columns compare CPU per request instead, baseline's ÷ reporter-vault's, which a noisy "
                  "neighbour disturbs less):", "",
                  "| engine | conns | seal ÷ A durable insert (aim ≥ 50 %) | lookup ÷ A read (aim ≥ 70 %) | "
                  "seal ÷ B pgcrypto (aim > 1) | seal ÷ A by CPU | lookup ÷ A by CPU |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in rat:
            def cell(key, test, pct=True):
                v = r.get(key)
                if v is None:
                    return "—"
                s = f"{100 * v:.0f} %" if pct else f"{v:.2f} ×"
                return f"{s} {mark(test(v))}" if r["engine"] == "sqlite" else s
            lines.append(f"| {r['engine']} | {r['connections']} | "
                         f"{cell('seal_vs_a_insert', lambda v: v >= SEAL_VS_A)} | "
                         f"{cell('lookup_vs_a_read', lambda v: v >= LOOKUP_VS_A)} | "
                         f"{cell('seal_vs_b', lambda v: v > 1.0, pct=False)} | "
                         f"{pct_or_dash(r.get('seal_vs_a_insert_cpu'))} | {pct_or_dash(r.get('lookup_vs_a_read_cpu'))} |")
    if doc["targets"]:
        lines += ["", "Targets (issue 7):", "", "| target | measured | |", "|---|---:|---|"]
        for t in doc["targets"]:
            extra = ""
            if "met_at" in t:
                extra = f" (at {t['at_connections']} connections; met at {', '.join(map(str, sorted(t['met_at']))) or 'none'})"
            lines.append(f"| {t['target']}{extra} | {t['shown']} | {mark(t['met'])} |")
    notes = list(doc["notes"])
    if any(r.get("rss_peak_is_per_point") is False for r in res):
        notes.append("peak RSS could not be reset between points (/proc/<pid>/clear_refs): it is the "
                     "server's peak so far, not the point's")
    for r in res:
        if r.get("note"):
            notes.append(f"{r['engine']} {r['system']} {r['scenario']} at {r['connections']}: {r['note']}")
        if r.get("error"):
            notes.append(f"{r['engine']} {r['system']} {r['scenario']} at {r['connections']} FAILED: "
                         f"{r['error'][:300]}")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ setup

def cmd_out(cmd, cwd=ROOT) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd).stdout.strip()
    except OSError:
        return ""


def machine_facts() -> dict:
    cpu_model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "host": socket.gethostname(), "nproc": os.cpu_count(), "cpu_model": cpu_model,
        "kernel": platform.release(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1),
        "rustc": cmd_out(["rustc", "--version"]), "git_commit": cmd_out(["git", "rev-parse", "HEAD"]),
        "git_dirty": bool(cmd_out(["git", "status", "--porcelain", "--untracked-files=no"])),
        "wrk": (cmd_out(["wrk", "-v"]) or "").splitlines()[0] if shutil.which("wrk") else None,
        "pgbench": cmd_out(["pgbench", "--version"]) if shutil.which("pgbench") else None,
        "tmp_fs": cmd_out(["stat", "-f", "-c", "%T", tempfile.gettempdir()]),
    }


def apt_install(pkgs: list) -> bool:
    if os.geteuid() != 0:
        log(f"missing {' '.join(pkgs)}: install them (apt-get install {' '.join(pkgs)})")
        return False
    log(f"installing {' '.join(pkgs)} with apt-get")
    e = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq"] + pkgs
    if subprocess.run(cmd, env=e, stdout=subprocess.DEVNULL).returncode == 0:
        return True
    subprocess.run(["apt-get", "update", "-qq"], env=e, stdout=subprocess.DEVNULL)
    return subprocess.run(cmd, env=e, stdout=subprocess.DEVNULL).returncode == 0


def ensure_tools(args, notes):
    if not shutil.which("wrk") and not apt_install(["wrk"]):
        sys.exit("wrk is needed")
    if "postgres" in args.engines:
        if not shutil.which("psql") or not shutil.which("pgbench"):
            apt_install(["postgresql-client"])
        if ("baseline-b" in args.only or "seal" in args.only) and not list(Path("/usr/share/postgresql").glob("*/extension/pgcrypto.control")):
            if apt_install(["postgresql-contrib"]):
                notes.append("installed postgresql-contrib (pgcrypto) with apt-get")


def build(args, target: Path):
    if args.no_build:
        return
    # Two invocations: built together, the binary's dependencies would be unified with the
    # example's dev-dependency features, and it would no longer be the shipped binary.
    for what in (["--bin", "reporter-vault"], ["--example", "bench-baseline-a"]):
        cmd = ["cargo", "build", "--release", "--locked", "-p", "vault-service"] + what
        log("$ " + " ".join(cmd) + f"   (CARGO_TARGET_DIR={target})")
        subprocess.run(cmd, cwd=ROOT, check=True, env=dict(os.environ, CARGO_TARGET_DIR=str(target)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--duration", type=float, default=10, help="seconds per point (default 10)")
    ap.add_argument("--quick", action="store_true", help="1 s per point, small sets: a smoke test")
    ap.add_argument("--connections", default="1,8,32,128")
    ap.add_argument("--engines", default="sqlite,postgres", help="sqlite,postgres")
    ap.add_argument("--engine", choices=ENGINES, help="one engine (same as --engines ENGINE)")
    ap.add_argument("--only", default=",".join(ALL_ONLY), help=",".join(ALL_ONLY))
    ap.add_argument("--seed", type=int, default=2000, help="records sealed (inserted) before lookups (reads)")
    ap.add_argument("--open-headroom", type=float, default=1.5,
                    help="approved disclosures per point = headroom × duration × that point's seal rate")
    ap.add_argument("--pg-url", default=None,
                    help="use this PostgreSQL server (throwaway databases are created and dropped on it) "
                         "instead of a private cluster; its max_connections may cap baseline B, and its "
                         "database CPU includes its other clients")
    ap.add_argument("--pg-private", action="store_true",
                    help="require the private cluster (the default: initdb on a free port, "
                         "max_connections=300; without --pg-private a cluster that cannot start falls back "
                         f"to $RV_TEST_PG_URL or {DEFAULT_PG_URL})")
    ap.add_argument("--rust-log", default=None,
                    help="RUST_LOG for reporter-vault (default: unset, the shipped default filter, which "
                         "writes one access-log line per request)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--no-write", action="store_true", help="print, but write no result files")
    args = ap.parse_args()
    if args.engine:
        args.engines = args.engine
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    args.conns = [int(x) for x in args.connections.split(",")]
    for e in args.engines:
        if e not in ENGINES:
            ap.error(f"unknown engine {e}")
    for s in args.only:
        if s not in ALL_ONLY:
            ap.error(f"unknown scenario {s} (one of {', '.join(ALL_ONLY)})")
    if args.quick:
        args.duration = 1
        args.seed = min(args.seed, 500)

    # A terminated run still stops its servers and its private PostgreSQL cluster (the
    # finally clauses run on SystemExit as on KeyboardInterrupt).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))

    notes = []
    ensure_tools(args, notes)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target").resolve()
    build(args, target)

    machine = machine_facts()
    machine["load_before"] = list(os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="rv-bench-"))
    ctx = Ctx(args, target, work)
    ctx.notes = notes
    private = None
    pg = None
    pg_info = None
    try:
        if "postgres" in args.engines:
            if args.pg_url is None:
                try:
                    private = PrivatePg(work)
                    pg = Pg(private.url)
                except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
                    if args.pg_private:
                        raise
                    args.pg_url = os.environ.get("RV_TEST_PG_URL") or DEFAULT_PG_URL
                    log(f"  private PostgreSQL cluster did not start ({e}); using {args.pg_url}")
                    notes.append(f"private PostgreSQL cluster did not start ({str(e)[:200]}): used the "
                                 f"server at {args.pg_url}")
            if private is None:
                pg = Pg(args.pg_url)
                if not pg.reachable() and os.geteuid() == 0:
                    for v in os.listdir("/etc/postgresql") if os.path.isdir("/etc/postgresql") else []:
                        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", v, "main", "start"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if not pg.reachable():
                notes.append(f"PostgreSQL at {pg.base} unreachable: PostgreSQL rows skipped")
                args.engines = [e for e in args.engines if e != "postgres"]
                pg = None
            else:
                pg_info = pg.settings()
                pg_info["private_cluster"] = bool(private)
                pg_info["url"] = pg.base
        pg_tree = None
        if pg:
            pm = pg.postmaster()
            pg_tree = PgTree(pm) if pm else None
            if not pm:
                notes.append("PostgreSQL server process not visible here: no DB CPU figures")
        def guarded(what, fn, *a):
            try:
                fn(*a)
            except Exception as e:  # a server that would not start: note it, run the rest
                log(f"  {what} FAILED: {e}")
                notes.append(f"{what} failed: {str(e)[:500]}")

        for engine in args.engines:
            log(f"== {engine}")
            epg, etree = (pg, pg_tree) if engine == "postgres" else (None, None)
            guarded(f"baseline A ({engine})", run_baseline_a, ctx, engine, epg, etree)
            guarded(f"reporter-vault ({engine})", run_service, ctx, engine, epg, etree)
        if pg and ("baseline-b" in args.only or "seal" in args.only):
            log("== baseline B (pgcrypto)")
            guarded("baseline B", run_baseline_b, ctx, pg, pg_tree)
    finally:
        if private:
            private.stop()
        shutil.rmtree(work, ignore_errors=True)

    machine["load_after"] = list(os.getloadavg())
    rat = ratios(ctx.results, args.conns, args.engines)
    if pg_info and not pg_info.get("private_cluster"):
        notes.append("PostgreSQL DB CPU counts the whole server, including other clients of it")
    doc = {
        "harness": "tests/bench/run", "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": args.quick,
        "duration_s": args.duration, "connections": args.conns, "engines": args.engines, "only": args.only,
        "seed": args.seed, "machine": machine, "postgres": pg_info,
        "service_log_filter": args.rust_log or "the default (info: one access-log line per request)",
        "sqlite": {"journal_mode": "WAL", "synchronous": "NORMAL", "writer_connections": 1},
        "results": ctx.results, "ratios": rat, "targets": targets(ctx.results, rat, args.conns), "notes": notes,
    }
    md = markdown(doc)
    print()
    print(md)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        host = re.sub(r"[^A-Za-z0-9._-]", "_", machine["host"])
        suffix = "-quick" if args.quick else ""
        jpath = RESULTS / f"{doc['date']}-{host}{suffix}.json"
        jpath.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        mpath = RESULTS / f"latest{suffix}.md"
        mpath.write_text(md)
        log(f"wrote {jpath.relative_to(ROOT)} and {mpath.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
