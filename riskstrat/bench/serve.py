"""Load benchmark of the scoring service on loopback: bounded in time and requests.

Starts the real server with a temporary token, then: ``clients`` concurrent callers send
single-person score+explain requests for ``seconds`` (at most ``max_requests``), first each
sending its next request as soon as the last is answered (the most the server can take),
then pausing ``pause`` seconds between requests (a steady load below saturation, as from
staff looking people up); then a series of 1,000-person batches; and times the bare
in-process model call on the same input.
Reports medians and tails, requests per second, the server's CPU time per request (all its
processes: a figure that other work on the machine disturbs far less than the rates),
errors, and server-to-bare ratios.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from riskstrat.bench.scale_process import process_tree
from riskstrat.models.bundle import ModelBundle
from riskstrat.serving.access import token_digest
from riskstrat.serving.service import freeze_long_lived, threads_for
from riskstrat.serving.settings import ServiceSettings


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def _single_person_load(
    url: str,
    token: str,
    bodies: list[bytes],
    clients: int,
    seconds: float,
    max_requests: int,
    pause: float = 0.0,
) -> tuple[list[float], int, float]:
    """``clients`` callers, each sending a request, waiting for the answer, then ``pause``
    seconds (0: straight away, which finds the most the server can take).

    Each caller first opens its connection with one untimed request, as a calling system
    keeps its connections open. aiohttp, not httpx, drives the load: on the same two cores
    httpx's own work held the server to a third of the requests a second.
    """
    import aiohttp

    latencies: list[float] = []
    errors = 0
    sent = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)

    async with aiohttp.ClientSession(
        url, headers=headers, connector=connector, timeout=timeout
    ) as session:

        async def post(body: bytes) -> bool:
            try:
                async with session.post("/v1/score", data=body) as response:
                    await response.read()
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        async def caller(index: int) -> None:
            nonlocal errors, sent
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                began = time.perf_counter()
                errors += not await post(bodies[(index + sent) % len(bodies)])
                latencies.append(time.perf_counter() - began)
                if pause:
                    await asyncio.sleep(pause)

        await asyncio.gather(*(post(bodies[i % len(bodies)]) for i in range(clients)))
        began = time.perf_counter()
        deadline = began + seconds
        await asyncio.gather(*(caller(i) for i in range(clients)))
    return latencies, errors, time.perf_counter() - began


def _server_cpu() -> dict[int, float]:
    """CPU seconds (user and system) used so far by each of this process's descendants: the
    server (``bentoml.serve`` runs its supervisor here and the workers as its children)."""
    tick, used = os.sysconf("SC_CLK_TCK"), {}
    for pid in process_tree(os.getpid())[1:]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # it ended meanwhile
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    return used


def _phase(
    name: str,
    latencies: list[float],
    errors: int,
    elapsed: float,
    cpu: tuple[dict[int, float], dict[int, float]],
) -> dict:
    """One load phase's figures, keyed ``<name>_...``; ``cpu``: the server's CPU seconds per
    process before and after the phase. The busiest process's share of that CPU shows how
    the connections fell on the workers (each keeps its connection, and a worker that
    accepted most of them is saturated while the other idles: the rates and tails then
    measure the split, not the server)."""
    before, after = cpu
    used = [after[pid] - before.get(pid, 0.0) for pid in after]
    total = sum(used)
    return {
        f"{name}_server_cpu_ms_per_request": round(1000 * total / max(len(latencies), 1), 2),
        f"{name}_busiest_process_cpu_share": round(max(used, default=0.0) / max(total, 1e-9), 2),
        f"{name}_requests": len(latencies),
        f"{name}_errors": errors,
        f"{name}_p50_ms": round(1000 * _percentile(latencies, 50), 1),
        f"{name}_p99_ms": round(1000 * _percentile(latencies, 99), 1),
        f"{name}_requests_per_second": round(len(latencies) / elapsed, 1),
    }


def _records(features: pd.DataFrame) -> list[dict]:
    """Feature records as a caller sends them, unknown values as null."""
    return [
        {"id": str(i), "features": {k: None if pd.isna(v) else v for k, v in row.items()}}
        for i, row in features.iterrows()
    ]


def _bare(bundle: ModelBundle, frame: pd.DataFrame, repeats: int) -> float:
    """Median seconds of the in-process model call (predict and explain) on ``frame``."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        bundle.predict_and_explain(frame, 3, threads_for(len(frame)))
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def run(
    features: pd.DataFrame,
    bundle: ModelBundle,
    tracking_uri: str,
    *,
    clients: int = 32,
    seconds: float = 20.0,
    max_requests: int = 60_000,
    batches: int = 10,
    pause: float = 0.05,
) -> dict:
    """Start the service, load it, and return the figures."""
    import bentoml

    token = secrets.token_urlsafe(16)
    folder = Path(tempfile.mkdtemp(prefix="riskstrat-bench-"))
    (folder / "access.toml").write_text(
        f'[[token]]\nname = "benchmark"\nrole = "system"\nsha256 = "{token_digest(token)}"\n'
    )
    settings = ServiceSettings.load(
        tracking_uri=tracking_uri,
        access_file=folder / "access.toml",
        audit_log=folder / "audit.jsonl",
    )
    os.environ.update(settings.environment(os.environ) | {"BENTOML_DO_NOT_TRACK": "True"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    frame = bundle.matrix(features)
    singles = [json.dumps({"records": [r]}).encode() for r in _records(features.head(500))]
    batch = {"records": _records(features.head(1000))}
    freeze_long_lived()  # else this process's full collections would count as server latency
    with (
        bentoml.serve(
            "riskstrat.serving.service:RiskService", port=port, host="127.0.0.1"
        ) as server,
        bentoml.SyncHTTPClient(server.url, token=token, server_ready_timeout=120),
    ):
        cpu_before = _server_cpu()
        latencies, errors, elapsed = asyncio.run(
            _single_person_load(server.url, token, singles, clients, seconds, max_requests)
        )
        between = _server_cpu()
        paced, paced_errors, paced_elapsed = asyncio.run(
            _single_person_load(server.url, token, singles, clients, seconds, max_requests, pause)
        )
        paced_cpu = (between, _server_cpu())
        batch_times, batch_errors = [], 0
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            for _ in range(batches):
                began = time.perf_counter()
                response = client.post("/v1/score", json=batch)
                batch_times.append(time.perf_counter() - began)
                batch_errors += response.status_code != 200
    bare_single = _bare(bundle, frame.head(1), 200)
    bare_batch = _bare(bundle, frame.head(1000), 10)
    return {
        "clients": clients,
        **_phase("single", latencies, errors, elapsed, (cpu_before, between)),
        "paced_pause_seconds": pause,
        **_phase("paced", paced, paced_errors, paced_elapsed, paced_cpu),
        "batch_1000_median_ms": round(1000 * statistics.median(batch_times), 1),
        "batch_1000_errors": int(batch_errors),
        "bare_single_ms": round(1000 * bare_single, 2),
        "bare_batch_1000_ms": round(1000 * bare_batch, 1),
        "server_over_bare_batch_1000": round(statistics.median(batch_times) / bare_batch, 2),
    }
