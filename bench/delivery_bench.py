"""Delivery benchmark: ``python -m bench.delivery_bench``.

1. ``publish()`` latency while every receiver hangs (target p99 <= 50 µs).
2. Deliveries per second to a fast local receiver, 2 endpoints per event, health recording on
   (target >= 1,500/s, and >= 70% of a bare httpx POST loop to the same receiver, same run).
3. RSS after 20,000 and after 100,000 deliveries (must not grow with the count).

The fast receiver is a raw asyncio HTTP/1.1 keep-alive server in another process, so it is not
the bottleneck. Figures are printed next to their targets; nothing here fails a build.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from delivery import DeliveryConfig, DeliveryRecord, Dispatcher, EndpointStore, SecretCipher
from scheduler.db import make_engine, upgrade
from scheduler.schema import accounts

PUBLISH_SAMPLES = 20_000
TOTAL_DELIVERIES = 100_000
FIRST_CHECKPOINT = 20_000
ENDPOINTS_PER_EVENT = 2
RATIO_ROUNDS = 3
RATIO_REQUESTS = 6_000
CONFIG = DeliveryConfig(allow_insecure_localhost=True)  # the defaults, as users run it
# The bare loop runs as many requests at once as the dispatcher can here.
CONCURRENCY = ENDPOINTS_PER_EVENT * CONFIG.per_endpoint_concurrency
DATA = {
    "toolCallId": 123456,
    "accountId": "acc_bench",
    "server": "github",
    "tool": "delete_repository",
    "reason": "blocked by policy «no destructive ops» ✓",
    "policyId": "pol_1",
    "ruleId": "rule_7",
    "argsHash": "ab" * 32,
    "occurredAt": "2026-06-19T12:00:00.000Z",
}


# -- the fast receiver (another process) ----------------------------------------------------


class _Http(asyncio.Protocol):
    """Just enough HTTP/1.1: read each request's headers and body, answer 204, keep alive."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            start = head.find(b"content-length:")
            length = 0
            if start >= 0:
                line_end = head.find(b"\r\n", start)
                length = int(head[start + 15 : line_end if line_end >= 0 else None])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")


def _serve(port_queue: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Http, "127.0.0.1", 0, backlog=1024)
        port_queue.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def start_receiver() -> tuple[multiprocessing.Process, int]:
    ctx = multiprocessing.get_context("spawn")
    port_queue = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(port_queue,), daemon=True)
    proc.start()
    return proc, int(port_queue.get(timeout=30))


# -- helpers ----------------------------------------------------------------------------------


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup_db(directory: Path, urls: list[str], cipher: SecretCipher) -> Any:
    engine = make_engine(f"sqlite:///{directory / 'bench.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            accounts.insert().values(
                id="acc_bench", name="bench", plan="pro", created_at=datetime.now(UTC)
            )
        )
    store = EndpointStore(engine, cipher, allow_insecure_localhost=True)
    for url in urls:
        store.add("acc_bench", url)
    return engine


def line(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    verdict = "" if ok is None else ("  ok" if ok else "  MISSED")
    print(f"  {name:<44} {value:>16}   {target}{verdict}", flush=True)


# -- 1. publish latency while every receiver hangs ----------------------------------------


async def bench_publish(directory: Path) -> None:
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(4096)  # never accepted: every connection hangs in the kernel's backlog
    url = f"http://127.0.0.1:{hang.getsockname()[1]}/hang"
    cipher = SecretCipher(Fernet.generate_key())
    engine = setup_db(directory, [url, url, url, url], cipher)
    config = DeliveryConfig(timeout_s=60, allow_insecure_localhost=True, queue_size=100_000)
    dispatcher = Dispatcher(engine, config, cipher=cipher)
    await dispatcher.start()
    samples = []
    clock = time.perf_counter_ns
    for i in range(PUBLISH_SAMPLES):
        started = clock()
        dispatcher.publish("acc_bench", "call.blocked", DATA)
        samples.append(clock() - started)
        if i % 100 == 0:
            await asyncio.sleep(0)  # let the loop fan out and the requests pile up, hanging
    await asyncio.sleep(0.5)
    in_flight = dispatcher.in_flight
    samples.sort()
    p50 = samples[len(samples) // 2] / 1000
    p99 = samples[int(len(samples) * 0.99)] / 1000
    print(f"publish() while every receiver hangs ({PUBLISH_SAMPLES:,} calls, 4 endpoints):")
    line("p50", f"{p50:.1f} µs")
    line("p99", f"{p99:.1f} µs", "target <= 50 µs", p99 <= 50)
    line("max", f"{samples[-1] / 1000:.1f} µs")
    line("requests hanging meanwhile", f"{in_flight}")
    await dispatcher.aclose(0.1)
    engine.dispose()
    hang.close()


# -- 2 and 3. throughput and memory ---------------------------------------------------------


async def dispatcher_rate(
    directory: Path, port: int, deliveries: int, *, report: bool = False
) -> float:
    url = f"http://127.0.0.1:{port}/hook"
    cipher = SecretCipher(Fernet.generate_key())
    engine = setup_db(directory, [url] * ENDPOINTS_PER_EVENT, cipher)
    config = CONFIG
    done = 0
    failed = 0

    def observe(record: DeliveryRecord) -> None:
        nonlocal done, failed
        done += 1
        failed += not record.ok

    dispatcher = Dispatcher(engine, config, cipher=cipher, observer=observe)
    await dispatcher.start()
    events = deliveries // ENDPOINTS_PER_EVENT
    rss_at: dict[int, float] = {}
    started = time.perf_counter()
    published = 0
    while published < events:
        # Keep the queue fed without overflowing it: the caller never waits on publish().
        while published < events and dispatcher.queue_depth + dispatcher.pending < 4_000:
            dispatcher.publish("acc_bench", "call.blocked", DATA)
            published += 1
        await asyncio.sleep(0.002)
        if FIRST_CHECKPOINT not in rss_at and done >= FIRST_CHECKPOINT:
            rss_at[FIRST_CHECKPOINT] = rss_mib()
    await dispatcher.drain(120)
    elapsed = time.perf_counter() - started
    rss_at[TOTAL_DELIVERIES] = rss_mib()
    await dispatcher.aclose(5)
    with engine.connect() as conn:
        logged = conn.exec_driver_sql("SELECT count(*) FROM webhook_deliveries").scalar()
    engine.dispose()
    rate = done / elapsed
    if not report:
        return rate
    print(
        f"dispatcher to a fast local receiver ({done:,} deliveries, "
        f"{ENDPOINTS_PER_EVENT} endpoints per event, health recording on, default config):"
    )
    line("deliveries per second", f"{rate:,.0f}/s", "target >= 1,500/s", rate >= 1500)
    line("failed deliveries", f"{failed}")
    line("delivery log rows written", f"{logged:,}")
    line("dropped events", f"{dispatcher.dropped}")
    first = rss_at.get(FIRST_CHECKPOINT, float("nan"))
    last = rss_at[TOTAL_DELIVERIES]
    line(f"RSS after {FIRST_CHECKPOINT:,} deliveries", f"{first:.1f} MiB")
    line(
        f"RSS after {TOTAL_DELIVERIES:,} deliveries",
        f"{last:.1f} MiB",
        "target: no growth with the count",
        last <= first * 1.10 + 5,
    )
    line("peak RSS (whole bench process)", f"{peak_rss_mib():.1f} MiB")
    return rate


async def bare_rate(port: int, requests: int) -> float:
    url = f"http://127.0.0.1:{port}/hook"
    body = b'{"event":"call.blocked","data":{}}'
    headers = {"content-type": "application/json"}
    per_worker = requests // CONCURRENCY
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def worker() -> None:
            for _ in range(per_worker):
                response = await client.post(url, content=body, headers=headers)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return per_worker * CONCURRENCY / elapsed


def main() -> None:
    print(f"machine: {os.cpu_count()} CPUs; Python {sys.version.split()[0]}", flush=True)
    proc, port = start_receiver()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(bench_publish(Path(tmp)))
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(dispatcher_rate(Path(tmp), port, TOTAL_DELIVERIES, report=True))
        # The ratio alternates short runs of both, so that load from other processes on this
        # machine hits both sides alike; the median of the per-round ratios is reported.
        ratios, bares = [], []
        for i in range(RATIO_ROUNDS):
            bare = asyncio.run(bare_rate(port, RATIO_REQUESTS))
            with tempfile.TemporaryDirectory() as tmp:
                ours = asyncio.run(dispatcher_rate(Path(tmp), port, RATIO_REQUESTS))
            bares.append(bare)
            ratios.append(ours / bare)
            print(f"  round {i + 1}: bare httpx {bare:,.0f}/s, dispatcher {ours:,.0f}/s")
        print(
            f"bare httpx POST loop to the same receiver ({CONCURRENCY} concurrent; "
            f"{RATIO_ROUNDS} rounds of {RATIO_REQUESTS:,}, alternating with the dispatcher):"
        )
        line("bare httpx requests per second (median)", f"{statistics.median(bares):,.0f}/s")
        ratio = statistics.median(ratios)
        line("dispatcher / bare httpx (median)", f"{ratio:.0%}", "target >= 70%", ratio >= 0.70)
    finally:
        proc.terminate()
        proc.join(5)


if __name__ == "__main__":
    main()
