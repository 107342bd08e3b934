#!/usr/bin/env python3
"""Server-mode load benchmark: client -> mock directly (the baseline), -> nginx -> mock (the
bare-hop floor, when nginx is installed), -> opengateway-bare-hop -> mock (a bare hop on the
gateway's own HTTP stack: axum, reqwest, tokio) and -> opengateway -> mock, in one run.

The gateway (and nginx, one worker) is pinned to CPU 0; the load generator and the mock provider
share CPU 1, as in the performance issue's setup. Public tools only: wrk for maximum throughput
and streams per second, oha for fixed request rates (latency measured from each request's
intended send time), curl for one stream's first byte and total time over a kept-alive
connection, /proc for memory and CPU time. Every figure is printed beside the baseline of the same run.

Install the tools once with bench/server/setup.sh, then (see bench/README.md):

    python3 bench/server/run.py                 # builds the release binaries first
    python3 bench/server/run.py --quick         # shorter runs, for a look
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_CPU = "0"
LOAD_CPU = "1"
# A short chat turn: the mock answers every request with the same 20 words, one per chunk.
ANSWER = " ".join(f"word{i}" for i in range(20))
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name twenty words, one after another, and nothing else."},
]


def body(model: str, stream: bool = False) -> str:
    request: dict = {"model": model, "messages": MESSAGES, "max_tokens": 64}
    if stream:
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
    return json.dumps(request, separators=(",", ":"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, what: str, proc: subprocess.Popen) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} is not listening on {port} after 10 s")


def memory(pid: int) -> dict[str, float]:
    """Resident set now and at its peak, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) / 1024
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (every thread) and of its children (nginx's worker)."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    ticks = 0
    for p in pids:
        # The fields after the command name, which may hold spaces: utime and stime are 14 and 15.
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Target:
    """One way to reach the mock: its name, base URL, model id and the process to watch."""

    name: str
    url: str
    model: str
    pid: int | None = None
    results: dict[str, float] = field(default_factory=dict)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="ogw-bench-"))
        self.procs: list[subprocess.Popen] = []
        self.bin_dir = Path(args.bin_dir)

    # ------------------------------------------------------------------ processes
    def spawn(self, cmd: list[str], cpu: str, log: str, **kw) -> subprocess.Popen:
        out = open(self.tmp / log, "w")
        proc = subprocess.Popen(["taskset", "-c", cpu, *cmd], stderr=out, **kw)
        self.procs.append(proc)
        return proc

    def start_mock(self) -> int:
        proc = self.spawn(
            [str(self.bin_dir / "opengateway-mock"), "--listen", "127.0.0.1:0", "--no-record",
             "--chunks", "20", "--content", ANSWER],
            LOAD_CPU, "mock.log", stdout=subprocess.PIPE, text=True,
        )
        line = proc.stdout.readline() if proc.stdout else ""
        match = re.search(r":(\d+)\s*$", line)
        if not match:
            sys.exit(f"mock did not announce its address: {line!r}")
        return int(match.group(1))

    def start_gateway(self, mock_port: int) -> tuple[int, int]:
        port = free_port()
        config = self.tmp / "opengateway.yaml"
        config.write_text(
            "providers:\n"
            f"  mock: {{ type: openai, api_base: \"http://127.0.0.1:{mock_port}/v1\", api_key: bench }}\n"
            "router: { retries: 0 }\n"
            "server:\n"
            f"  listen: 127.0.0.1:{port}\n"
            f"  database: sqlite://{self.tmp}/bench.db\n"
            "  auth: none\n"
            + ("ledger: { database: memory }\n" if self.args.ledger == "memory" else "")
        )
        env = dict(os.environ)
        if self.args.log:
            env["OPENGATEWAY_LOG"] = self.args.log
        proc = self.spawn(
            [str(self.bin_dir / "opengateway"), "--config", str(config), "serve"],
            GATEWAY_CPU, "gateway.log", env=env, stdout=subprocess.DEVNULL,
        )
        wait_listening(port, "opengateway", proc)
        return port, proc.pid

    def start_nginx(self, mock_port: int) -> tuple[int, int] | None:
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if not nginx:
            print("nginx not installed: no floor figures (bench/server/setup.sh installs it)")
            return None
        port = free_port()
        conf = self.tmp / "nginx.conf"
        conf.write_text(f"""
worker_processes 1;
daemon off;
pid {self.tmp}/nginx.pid;
error_log {self.tmp}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {self.tmp}/nginx-body;
    proxy_temp_path {self.tmp}/nginx-proxy;
    upstream mock {{ server 127.0.0.1:{mock_port}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
""")
        proc = self.spawn([nginx, "-c", str(conf), "-e", str(self.tmp / "nginx-error.log")],
                          GATEWAY_CPU, "nginx.log", stdout=subprocess.DEVNULL)
        wait_listening(port, "nginx", proc)
        return port, proc.pid

    def start_bare_hop(self, mock_port: int) -> tuple[int, int] | None:
        """The bare hop on the gateway's stack (bench/bare-hop), when it has been built."""
        binary = self.bin_dir / "opengateway-bare-hop"
        if not binary.exists():
            print(f"{binary} not built: no figures for the gateway's stack alone")
            return None
        port = free_port()
        proc = self.spawn([str(binary), "--listen", f"127.0.0.1:{port}",
                           "--upstream", f"http://127.0.0.1:{mock_port}"],
                          GATEWAY_CPU, "bare-hop.log", stdout=subprocess.DEVNULL)
        wait_listening(port, "opengateway-bare-hop", proc)
        return port, proc.pid

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    # ------------------------------------------------------------------ load tools
    def lua(self, payload: str) -> Path:
        script = self.tmp / f"post-{abs(hash(payload))}.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(payload)}\n"
        )
        return script

    def wrk(self, url: str, payload: str, connections: int, seconds: float) -> dict[str, float]:
        cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
               "--latency", "-s", str(self.lua(payload)), url]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        failed = int(bad.group(1)) if bad else 0
        if errors:
            failed += sum(int(g) for g in errors.groups())
        return {"rps": rps, "failed": failed}

    def oha(self, url: str, payload: str, rate: int, seconds: float) -> dict[str, float]:
        cmd = ["taskset", "-c", LOAD_CPU, self.args.oha, "-z", f"{seconds}s", "-q", str(rate),
               "-c", "64", "--latency-correction", "--no-tui", "--output-format", "json",
               "-m", "POST", "-T", "application/json", "-d", payload, url]
        report = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        pct = report["latencyPercentiles"]
        codes = report.get("statusCodeDistribution", {})
        ok = int(codes.get("200", 0))
        return {
            "p50_ms": pct["p50"] * 1000,
            "p99_ms": pct["p99"] * 1000,
            "rps": report["summary"]["requestsPerSec"],
            "answered": sum(int(n) for n in codes.values()),
            "failed": sum(int(n) for n in codes.values()) - ok + len(report.get("errorDistribution", {})),
        }

    def stream_probe(self, url: str, payload: str, count: int) -> dict[str, float]:
        """One kept-alive connection, `count` streams in a row: median first byte and total."""
        cmd = ["taskset", "-c", LOAD_CPU, "curl", "-s"]
        for i in range(count):
            if i:
                cmd.append("--next")
            cmd += ["-o", "/dev/null", "-w", "%{http_code} %{time_starttransfer} %{time_total}\\n",
                    "-H", "content-type: application/json", "--data-binary", payload, url]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows = [line.split() for line in out.splitlines() if line.strip()]
        rows = rows[len(rows) // 10:]  # the first tenth warms up
        failed = sum(1 for r in rows if r[0] != "200")
        return {
            "first_ms": statistics.median(float(r[1]) for r in rows) * 1000,
            "total_ms": statistics.median(float(r[2]) for r in rows) * 1000,
            "failed": failed,
        }

    def open_streams(self, target: Target, slow_payload: str, connections: int) -> float:
        """Peak resident set of the target's process while `connections` streams are open."""
        assert target.pid
        cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", "-d6s", "--timeout", "10s",
               "-s", str(self.lua(slow_payload)), target.url]
        load = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = 0.0
        while load.poll() is None:
            peak = max(peak, memory(target.pid)["VmRSS"])
            time.sleep(0.2)
        return peak

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        a = self.args
        mock_port = self.start_mock()
        targets = [Target("direct", f"http://127.0.0.1:{mock_port}/v1/chat/completions", "mock-gpt")]
        nginx = self.start_nginx(mock_port)
        if nginx:
            targets.append(Target("nginx", f"http://127.0.0.1:{nginx[0]}/v1/chat/completions",
                                  "mock-gpt", nginx[1]))
        bare = self.start_bare_hop(mock_port)
        if bare:
            targets.append(Target("axum+reqwest", f"http://127.0.0.1:{bare[0]}/v1/chat/completions",
                                  "mock-gpt", bare[1]))
        gw_port, gw_pid = self.start_gateway(mock_port)
        gateway = Target("opengateway", f"http://127.0.0.1:{gw_port}/v1/chat/completions",
                         "mock/mock-gpt", gw_pid)
        targets.append(gateway)
        gateway.results["rss_idle_mb"] = memory(gw_pid)["VmRSS"]

        for t in targets:
            plain, streamed = body(t.model), body(t.model, stream=True)
            print(f"-- {t.name}", flush=True)
            self.wrk(t.url, plain, 64, 2)  # warm-up: connections, pools, caches
            r = self.wrk(t.url, plain, 64, a.seconds)
            t.results["max_rps"], t.results["max_failed"] = r["rps"], r["failed"]
            for rate in a.rates:
                cpu_before = cpu_seconds(t.pid) if t.pid else 0.0
                r = self.oha(t.url, plain, rate, a.seconds)
                if t.pid and r["answered"]:
                    # What one request costs the proxy's CPU at this rate (p99 queues behind it).
                    used = cpu_seconds(t.pid) - cpu_before
                    t.results[f"cpu_us_at_{rate}"] = used * 1e6 / r["answered"]
                t.results[f"p50_at_{rate}"] = r["p50_ms"]
                t.results[f"p99_at_{rate}"] = r["p99_ms"]
                t.results[f"failed_at_{rate}"] = r["failed"]
            r = self.stream_probe(t.url, streamed, a.probes)
            t.results.update({"stream_first_ms": r["first_ms"], "stream_total_ms": r["total_ms"],
                              "stream_probe_failed": r["failed"]})
            r = self.wrk(t.url, streamed, 64, a.seconds)
            t.results["streams_per_s"], t.results["streams_failed"] = r["rps"], r["failed"]
            if t.pid:
                t.results["rss_peak_mb"] = memory(t.pid)["VmHWM"]
                t.results["rss_after_mb"] = memory(t.pid)["VmRSS"]
                # Each stream lasts 2 s (20 chunks 100 ms apart), so all stay open at once.
                slow = body(f"{t.model}~chunk_delay_ms=100", stream=True)
                t.results["rss_open_streams_mb"] = self.open_streams(t, slow, a.open_streams)
            print(json.dumps(t.results, indent=None), flush=True)

        self.report(targets)

    def report(self, targets: list[Target]) -> None:
        a = self.args
        base = targets[0].results
        print()
        print(f"date {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.2f}; {a.seconds:g} s per load run; gateway log: "
              f"{a.log or 'info (default)'}; ledger: {a.ledger}")
        header = "| figure | " + " | ".join(t.name for t in targets) + " |"
        print(header)
        print("|---" * (len(targets) + 1) + "|")

        def row(label: str, key: str, fmt: str, added: bool = False) -> None:
            cells = []
            for t in targets:
                if key not in t.results:
                    cells.append("–")
                    continue
                v = t.results[key]
                cell = format(v, fmt)
                if t is not targets[0] and key in base:
                    if added:
                        cell += f" (+{v - base[key]:.3f})"
                    elif base[key]:
                        cell += f" ({v / base[key]:.2f}×)"
                cells.append(cell)
            print(f"| {label} | " + " | ".join(cells) + " |")

        row("max throughput, 64 conns (req/s)", "max_rps", ".0f")
        for rate in a.rates:
            row(f"p50 at {rate} req/s (ms, added)", f"p50_at_{rate}", ".3f", added=True)
            row(f"p99 at {rate} req/s (ms, added)", f"p99_at_{rate}", ".3f", added=True)
            row(f"CPU per request at {rate} req/s (µs)", f"cpu_us_at_{rate}", ".0f")
        row("stream, 1 conn: first byte (ms, added)", "stream_first_ms", ".3f", added=True)
        row("stream, 1 conn: total (ms)", "stream_total_ms", ".3f")
        row("streams/s, 64 conns (20 chunks)", "streams_per_s", ".0f")
        row("RSS idle (MB)", "rss_idle_mb", ".1f")
        row("RSS peak under load (MB)", "rss_peak_mb", ".1f")
        row("RSS after the load runs (MB)", "rss_after_mb", ".1f")
        row(f"RSS with {a.open_streams} open streams (MB)", "rss_open_streams_mb", ".1f")
        self.report_targets(targets)
        failures = {t.name: {k: v for k, v in t.results.items() if "failed" in k and v} for t in targets}
        if any(failures.values()):
            print(f"\nfailed requests: {failures}")
        if a.json:
            Path(a.json).write_text(json.dumps({t.name: t.results for t in targets}, indent=2))


    def report_targets(self, targets: list[Target]) -> None:
        """The performance issue's server targets, read against nginx measured in this run."""
        by_name = {t.name: t.results for t in targets}
        direct, nginx, ours = by_name.get("direct"), by_name.get("nginx"), by_name.get("opengateway")
        if not (direct and nginx and ours and "p50_at_1000" in ours):
            return
        added = lambda r, key: r[key] - direct[key]  # noqa: E731
        rows = [
            ("max throughput ≥ 0.5× nginx's", f"{ours['max_rps'] / nginx['max_rps']:.2f}×",
             "", ours["max_rps"] >= 0.5 * nginx["max_rps"]),
            ("p50 added at 1000 req/s ≤ +0.12 ms", f"+{added(ours, 'p50_at_1000'):.3f} ms",
             f"+{added(nginx, 'p50_at_1000'):.3f} ms", added(ours, "p50_at_1000") <= 0.12),
            ("p99 at 1000 req/s ≤ nginx's", f"{ours['p99_at_1000']:.3f} ms", f"{nginx['p99_at_1000']:.3f} ms",
             ours["p99_at_1000"] <= nginx["p99_at_1000"]),
            ("stream first byte added ≤ +0.1 ms", f"+{added(ours, 'stream_first_ms'):.3f} ms",
             f"+{added(nginx, 'stream_first_ms'):.3f} ms", added(ours, "stream_first_ms") <= 0.1),
            ("stream total ≤ 2× nginx's", f"{ours['stream_total_ms'] / nginx['stream_total_ms']:.2f}×",
             f"{nginx['stream_total_ms']:.3f} ms", ours["stream_total_ms"] <= 2 * nginx["stream_total_ms"]),
            ("streams/s ≥ 0.5× nginx's", f"{ours['streams_per_s'] / nginx['streams_per_s']:.2f}×", "",
             ours["streams_per_s"] >= 0.5 * nginx["streams_per_s"]),
            ("peak RSS under load ≤ 30 MB", f"{ours['rss_peak_mb']:.1f} MB", "", ours["rss_peak_mb"] <= 30),
            (f"{self.args.open_streams} open streams ≤ 50 MB over that peak",
             f"+{ours['rss_open_streams_mb'] - ours['rss_peak_mb']:.1f} MB", "",
             ours["rss_open_streams_mb"] - ours["rss_peak_mb"] <= 50),
        ]
        print("\nThe performance issue's targets (ratios to nginx, measured in this run):")
        print("| target | opengateway | nginx | met |")
        print("|---|---|---|---|")
        for label, value, floor, met in rows:
            print(f"| {label} | {value} | {floor} | {'yes' if met else 'no'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", default=os.environ.get("OGW_BIN_DIR", str(ROOT / "target" / "release")),
                        help="where opengateway, opengateway-mock and opengateway-bare-hop are (default: target/release)")
    parser.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    parser.add_argument("--seconds", type=int, default=10, help="length of each load run, whole seconds (wrk takes no fractions)")
    parser.add_argument("--rates", type=int, nargs="*", default=[1000, 5000], help="fixed request rates")
    parser.add_argument("--probes", type=int, default=500, help="streams in a row for the first-byte probe")
    parser.add_argument("--open-streams", type=int, default=1000, help="streams held open for the RSS figure")
    parser.add_argument("--log", help="OPENGATEWAY_LOG for the gateway (default: its own, info)")
    parser.add_argument("--ledger", choices=["sqlite", "memory"], default="sqlite",
                        help="the gateway's ledger: its SQLite store (the server's default) or memory")
    parser.add_argument("--oha", default=shutil.which("oha") or str(Path.home() / ".cargo/bin/oha"))
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 100 probes")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.probes = 3, 100
    for tool in ("wrk", "taskset", "curl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed: run bench/server/setup.sh")
    if not Path(args.oha).exists():
        sys.exit("oha is not installed: run bench/server/setup.sh")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "opengateway-server", "-p", "opengateway-mock",
                        "-p", "opengateway-bare-hop"],
                       cwd=ROOT, check=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(65536, hard)), hard))
    bench = Bench(args)
    try:
        bench.run()
    finally:
        bench.stop()
        print(f"logs in {bench.tmp}")


if __name__ == "__main__":
    main()
