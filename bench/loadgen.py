"""The load generator of the ingress benchmark, run as its own process.

`python -m bench.loadgen REQUESTS_FILE --port P --concurrency C --duration S --warmup W` sends the
pre-built raw HTTP/1.1 requests in REQUESTS_FILE (a pickled list of bytes, each used once) over C
keep-alive connections, closed loop: each connection sends its next request as soon as the answer
to the previous one is in. Raw asyncio streams keep the generator's own cost per request small,
because it shares the machine's cores with the server it measures. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import time
from collections import Counter
from pathlib import Path


async def _connection(
    port: int,
    requests: list[bytes],
    position: list[int],
    stop_at: float,
    record_from: float,
    latencies: list[float],
    statuses: Counter[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            now = time.perf_counter()
            if now >= stop_at or position[0] >= len(requests):
                return
            request = requests[position[0]]
            position[0] += 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            if length:
                await reader.readexactly(length)
            finished = time.perf_counter()
            if started >= record_from:
                latencies.append(finished - started)
                statuses[status] += 1
    finally:
        writer.close()


async def run(port: int, requests: list[bytes], concurrency: int, duration: float, warmup: float):
    position = [0]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    begin = time.perf_counter()
    record_from = begin + warmup
    stop_at = record_from + duration
    await asyncio.gather(
        *(
            _connection(port, requests, position, stop_at, record_from, latencies, statuses)
            for _ in range(concurrency)
        )
    )
    measured = max(1e-9, min(time.perf_counter(), stop_at) - record_from)
    latencies.sort()

    def percentile(p: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "seconds": measured,
        "rps": len(latencies) / measured,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "exhausted": position[0] >= len(requests),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("requests_file", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    requests = pickle.loads(args.requests_file.read_bytes())
    result = asyncio.run(run(args.port, requests, args.concurrency, args.duration, args.warmup))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
