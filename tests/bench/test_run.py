"""Sanity tests of the benchmark harness's pure helpers (parsing, ratios, targets, the report).

    cd tests/bench && python3 -m unittest -v

No load, no servers, no network; not part of tests/run or CI.
"""

import importlib.util
import math
import unittest
from pathlib import Path

_spec = importlib.util.spec_from_file_location("bench_run", Path(__file__).with_name("run.py"))
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)


def wrk_summary(requests=1000, duration_us=2_000_000, status=0, non_2xx=0):
    return {"requests": requests, "duration_us": duration_us, "bytes": 0,
            "errors": {"connect": 0, "read": 0, "write": 0, "status": status, "timeout": 0, "non_2xx": non_2xx},
            "latency_us": {"min": 100, "mean": 900.5, "stdev": 10.0, "max": 30000, "p50": 800, "p90": 1500,
                           "p99": 9000, "p99.9": 20000},
            "threads_exhausted": 0, "opened": 0}


def point(engine, system, scenario, c, rps, p99=5.0, rss=None, cpu_ms=None):
    return {"engine": engine, "system": system, "scenario": scenario, "connections": c, "rps": rps,
            "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": p99, "p99.9": p99 * 2, "mean": 1.0, "max": p99 * 3},
            "non_2xx": 0, "socket_errors": None, "peak_rss_mib": rss, "cpu_ms_per_request": cpu_ms}


class Parsing(unittest.TestCase):
    def test_stat_fields_survive_odd_command_names(self):
        line = "4242 (tokio (runtime) 1) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 3 4 20 0 9 0 1 2 3\n"
        f = run.stat_fields(line)
        self.assertEqual(f[0], "S")
        self.assertEqual(int(f[1]), 17)  # ppid
        self.assertEqual((int(f[11]), int(f[12])), (250, 75))  # utime, stime
        self.assertEqual((int(f[13]), int(f[14])), (3, 4))  # cutime, cstime

    def test_percentile_is_nearest_rank(self):
        vals = list(range(1, 101))
        self.assertEqual(run.percentile(vals, 50), 50)
        self.assertEqual(run.percentile(vals, 99), 99)
        self.assertEqual(run.percentile(vals, 99.9), 100)
        self.assertEqual(run.percentile([7], 99.9), 7)
        self.assertIsNone(run.percentile([], 50))

    def test_wrk_summary(self):
        p = run.parse_wrk_summary(wrk_summary(status=3, non_2xx=5))
        self.assertAlmostEqual(p["rps"], 500.0)
        self.assertEqual(p["latency_ms"]["p99"], 9.0)
        self.assertEqual(p["latency_ms"]["p99.9"], 20.0)
        # load.lua's own count (every status outside 2xx) wins over wrk's (> 399 only).
        self.assertEqual(p["non_2xx"], 5)
        self.assertEqual(p["status_ge_400"], 3)
        # A summary from a script without its own count still reports wrk's.
        s = wrk_summary(status=2)
        del s["errors"]["non_2xx"]
        self.assertEqual(run.parse_wrk_summary(s)["non_2xx"], 2)

    def test_pgbench(self):
        out = ("transaction type: /tmp/x/pgcrypto.sql\nnumber of clients: 8\n"
               "number of failed transactions: 2 (0.100%)\nlatency average = 1.875 ms\n"
               "initial connection time = 12.3 ms\ntps = 4266.123456 (without initial connection time)\n")
        log = [f"{i % 8} {i} {1000 + i} 0 1764400000 {i}" for i in range(1000)] + ["3 9 failed 0 1764400000 1"]
        p = run.parse_pgbench(out, log)
        self.assertAlmostEqual(p["rps"], 4266.123456)
        self.assertEqual(p["requests"], 1000)
        self.assertEqual(p["non_2xx"], 2)
        self.assertAlmostEqual(p["latency_ms"]["p50"], 1.499)  # nearest rank: the 500th of 1000
        self.assertAlmostEqual(p["latency_ms"]["p99"], 1.989)
        self.assertAlmostEqual(p["latency_ms"]["mean"], 1.875)
        self.assertNotIn("note", p)
        self.assertIsNone(run.parse_pgbench("pgbench: error: connection refused\n", []))
        none = run.parse_pgbench("number of transactions actually processed: 0\n", [])
        self.assertEqual(none["rps"], 0.0)
        self.assertIn("note", none)

    def test_cpu_per_request(self):
        self.assertEqual(run.cpu_per_request({"requests": 2000, "server_cpu_s": 1.0, "db_cpu_s": 0.5}), 0.75)
        self.assertEqual(run.cpu_per_request({"requests": 1000, "db_cpu_s": 0.5}), 0.5)
        self.assertIsNone(run.cpu_per_request({"requests": 0, "server_cpu_s": 1.0}))
        self.assertIsNone(run.cpu_per_request({"requests": 10}))

    def test_person_ids_carry_a_valid_check_character(self):
        weights = [2 ** (17 - i) % 11 for i in range(17)]  # ISO 7064 MOD 11-2
        seen = set()
        for n in (0, 1, 999, 1000, 123_456_789, 20_000_000, 5_000_000_123):
            idn, phone = run.person(n)
            self.assertEqual(len(idn), 18)
            check = (12 - sum(int(c) * w for c, w in zip(idn[:17], weights)) % 11) % 11
            self.assertEqual(idn[17], "X" if check == 10 else str(check))
            self.assertTrue(phone.startswith("13") and len(phone) == 11)
            seen.add(idn)
        self.assertEqual(len(seen), 7)
        self.assertIn('"id_number":"%s"' % run.person(42)[0], run.seal_body(42))


class Report(unittest.TestCase):
    def results(self):
        return [
            point("sqlite", "service", "seal", 32, 1200, p99=39.5, cpu_ms=0.8),
            point("sqlite", "baseline-a", "insert", 32, 4000, cpu_ms=0.2),
            point("postgres", "baseline-b", "insert", 32, 1000),
            point("sqlite", "service", "lookup", 32, 6000, p99=10.0),
            point("sqlite", "baseline-a", "read", 32, 8000),
            point("sqlite", "service", "seal", 128, 1100, p99=200, rss=24.0),
            point("sqlite", "service", "lookup", 128, 5000, rss=140.0),
        ]

    def test_ratios_and_targets(self):
        res = self.results()
        rat = run.ratios(res, [32, 128], ["sqlite"])
        r32 = next(r for r in rat if r["connections"] == 32)
        self.assertAlmostEqual(r32["seal_vs_a_insert"], 0.3)
        self.assertAlmostEqual(r32["seal_vs_b"], 1.2)
        self.assertAlmostEqual(r32["lookup_vs_a_read"], 0.75)
        self.assertAlmostEqual(r32["seal_vs_a_insert_cpu"], 0.25)
        t = {x["target"].split(" (")[0].split(":")[0]: x for x in run.targets(res, rat, [32, 128])}
        self.assertFalse(t["sealing on the embedded default ≥ 50 % of baseline A's durable insert"]["met"])
        self.assertTrue(t["sealing on the embedded default ahead of baseline B"]["met"])
        self.assertTrue(t["lookups on the embedded default ≥ 70 % of baseline A's read"]["met"])
        p99 = [x for x in run.targets(res, rat, [32, 128]) if x["target"].startswith("p99")]
        self.assertEqual({x["target"].split(": ")[1]: x["met"] for x in p99},
                         {"seal (sqlite)": False, "lookup (sqlite)": True})
        rss = [x for x in run.targets(res, rat, [32, 128]) if x["target"].startswith("peak RSS")]
        self.assertEqual(len(rss), 1)
        self.assertFalse(rss[0]["met"])
        self.assertEqual(rss[0]["value"], 140.0)

    def test_markdown_renders(self):
        res = self.results()
        rat = run.ratios(res, [32, 128], ["sqlite", "postgres"])
        doc = {"quick": True, "duration_s": 1, "engines": ["sqlite", "postgres"], "results": res, "ratios": rat,
               "targets": run.targets(res, rat, [32, 128]), "notes": ["a note"], "date": "2026-11-29",
               "service_log_filter": "default", "postgres": None,
               "machine": {"nproc": 2, "cpu_model": "x", "mem_gib": 1, "kernel": "6", "rustc": "rustc",
                           "git_commit": "0" * 40, "git_dirty": False, "load_before": [1, 1, 1],
                           "load_after": [2, 2, 2]}}
        md = run.markdown(doc)
        self.assertIn("| sqlite | reporter-vault | seal | 32 | 1200 |", md)
        self.assertIn("30 % ❌", md)
        self.assertIn("- a note", md)
        self.assertFalse(any(math.isnan(x["value"]) for x in doc["targets"]))


if __name__ == "__main__":
    unittest.main()
