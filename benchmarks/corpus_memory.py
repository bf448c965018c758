"""Peak resident memory of `rnnkit train` against the size of the corpus.

For each size (GB), writes an ASCII text of that size (one sentence over and
over), runs `rnnkit train` on it in a fresh process (a 1 x 64 LSTM, 20 steps
of batch 32 x 64, evaluations at steps 10 and 20 over a small validation
split, one thread), prints the process's peak RSS and wall time, and removes
text, token file and run. ``--in-memory`` reads every corpus into memory, as
rnnkit does below ``rnnkit.data.tokenfile.STREAM_BYTES``, instead of
streaming it from a token file.

    python benchmarks/corpus_memory.py [--in-memory] 0.6 2.4 4.8
"""

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from common import markdown_row, markdown_table, print_command, run

LINE = b"the quick brown fox jumps over the lazy dog while a small cat sleeps near an old red barn\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", type=float, nargs="+", help="corpus sizes in GB")
    parser.add_argument("--in-memory", action="store_true", help="read the corpus into memory, however large")
    args = parser.parse_args()
    print_command()
    child = textwrap.dedent(f"""
        import resource, sys
        from rnnkit.cli.main import main
        from rnnkit.data import tokenfile
        if {args.in_memory}:
            tokenfile.STREAM_BYTES = float("inf")
        main(sys.argv[1:])
        print("peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        """)
    print(markdown_table(["corpus (GB)", "read", "peak RSS (GB)", "wall time (s)"], []), flush=True)
    for gigabytes in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "big.txt"
            block = LINE * (2**20 // len(LINE))
            with open(path, "wb") as f:
                for _ in range(int(gigabytes * 1e9) // len(block)):
                    f.write(block)
            start = time.perf_counter()
            stdout = run([sys.executable, "-c", child, "train", str(path), "--hidden-size", "64", "--num-layers", "1",
                          "--batch-size", "32", "--seq-len", "64", "--max-steps", "20", "--eval-every", "10",
                          "--eval-streams", "64", "--val-fraction", "0.00002", "--sample-length", "0",
                          "--device", "cpu", "--out", str(Path(tmp) / "run")],
                         env={"OMP_NUM_THREADS": "1", "RNNKIT_CACHE": str(Path(tmp) / "cache")})
            peak = int(stdout.split("peak ")[-1]) / 1e9
            print(markdown_row([f"{path.stat().st_size / 1e9:.2f}", "into memory" if args.in_memory else "streamed",
                                f"{peak:.3f}", f"{time.perf_counter() - start:.0f}"]), flush=True)


if __name__ == "__main__":
    main()
