"""What `rnnkit serve` costs over calling the model: a language model's
streamed sample over HTTP against ``model.generate`` in the same process,
the time to the first piece, and surprisal requests a second with one and
with two clients at once.

The server runs in a thread of this process on a free port (as the tests
start it), the client is ``http.client``; both share the machine's cores, as
a browser and the server would on one machine. Each figure is the median of
``--rounds`` rounds.

    python benchmarks/serve.py RUN [--sample-length 2000] [--text-length 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time

import torch

from rnnkit import load_run
from rnnkit.cli.serve import make_server
from rnnkit.tasks.serving import Limits
from rnnkit.training import resolve_precision


def streamed(port: int, length: int) -> tuple[float, float]:
    """(tokens a second, seconds to the first generated piece) of one streamed sample."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    connection.request("POST", "/api/sample", json.dumps({"prime": "\n", "sample_length": length, "seed": 0}))
    response = connection.getresponse()
    first, pieces = None, 0
    for line in response:
        if "text" in json.loads(line):
            pieces += 1
            if pieces == 2:  # the first piece is the prime, echoed; the second the first token generated
                first = time.perf_counter() - start
    elapsed = time.perf_counter() - start
    connection.close()
    return length / elapsed, first


def direct(model, length: int, precision: str) -> float:
    """Tokens a second of ``model.generate`` from the same prime, in this process."""
    start = time.perf_counter()
    for _ in model.generate([0], length, generator=torch.Generator().manual_seed(0), precision=precision):
        pass
    return length / (time.perf_counter() - start)


def surprisals_per_s(port: int, text: str, clients: int, requests: int) -> float:
    """Surprisal requests a second, ``clients`` at once, ``requests`` each."""
    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        for _ in range(requests):
            connection.request("POST", "/api/surprisal", json.dumps({"text": text}))
            reply = connection.getresponse()
            assert reply.status == 200, reply.read()
            reply.read()
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return clients * requests / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a character language model's run folder")
    parser.add_argument("--sample-length", type=int, default=2000)
    parser.add_argument("--text-length", type=int, default=2000, help="characters of each scored text")
    parser.add_argument("--requests", type=int, default=10, help="surprisal requests a client makes")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model, tokenizer, run = load_run(args.run)
    text = open(run.data.path, encoding="utf-8").read()[:args.text_length]
    server = make_server(args.run, port=0, limits=Limits(max_length=args.sample_length), max_concurrent=2, wait=600)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    precision = resolve_precision("auto", torch.device("cpu"))
    rows = {"generate in process (tokens/s)": [], "streamed over HTTP (tokens/s)": [],
            "first piece over HTTP (ms)": [], "surprisal, 1 client (requests/s)": [],
            "surprisal, 2 clients (requests/s)": []}
    for _ in range(args.rounds):
        rows["generate in process (tokens/s)"].append(direct(model, args.sample_length, precision))
        rate, first = streamed(port, args.sample_length)
        rows["streamed over HTTP (tokens/s)"].append(rate)
        rows["first piece over HTTP (ms)"].append(first * 1000)
        rows["surprisal, 1 client (requests/s)"].append(surprisals_per_s(port, text, 1, args.requests))
        rows["surprisal, 2 clients (requests/s)"].append(surprisals_per_s(port, text, 2, args.requests))
    server.shutdown()
    print(f"{args.run}: {sum(p.numel() for p in model.parameters()):,} parameters, {precision} generation, "
          f"{args.sample_length} tokens a sample, {len(text)} characters a scored text, {args.rounds} rounds")
    print("| measure | median | range |\n|---|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(values):,.1f} | {min(values):,.1f}-{max(values):,.1f} |")


if __name__ == "__main__":
    main()
