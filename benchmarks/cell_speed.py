"""Training speed of a character language model per cell and engine, side by
side in one process: tokens/s of forward + backward + an Adam step on one
fixed batch, in rounds that take every setting in turn (so load from other
processes spreads over all of them), best round of each, and its ratio to
the first setting's.

A setting is CELL:ENGINE[:steps][:bn]: ``steps`` puts the explicit engine on
unroll's per-step nodes instead of the cell's layer node, ``bn`` adds
--batchnorm. For example, the layer-normalised cells against theirs:

    python benchmarks/cell_speed.py --settings lstm:auto lstm:explicit lnlstm:explicit gru:auto lngru:explicit
    python benchmarks/cell_speed.py --settings rnn:auto leaky:explicit leaky:explicit:steps --hidden-size 256
"""

import argparse

import torch

from rnnkit import LanguageModel
from rnnkit.data.batches import StreamBatch
from rnnkit.kernels import engine

from common import in_turns, markdown_table

VOCAB = 65  # tiny-shakespeare's characters


def trainer(model: LanguageModel, steps: bool, bf16: bool):
    """One training step (forward, backward, Adam) of ``model`` on a batch (x, y); ``steps``: the explicit
    engine on unroll's per-step nodes."""
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)

    def step(batch):
        engine.LAYER_NODES = not steps
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            _, loss = model(*batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=["lstm:auto", "lstm:explicit", "lnlstm:explicit"])
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0, help="per setting and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--bf16", action="store_true", help="under bf16 autocast, as rnnkit train runs on this CPU")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randint(0, VOCAB, (args.batch_size, args.seq_len))  # (B, T)
    y = torch.roll(x, -1, 1)
    contestants = {}
    for setting in args.settings:
        cell, engine_name, *more = setting.split(":")
        model = LanguageModel(VOCAB, cell=cell, hidden_size=args.hidden_size, num_layers=args.num_layers,
                              engine=engine_name, dropout=0.0, batchnorm="bn" in more)
        contestants[setting] = (trainer(model, "steps" in more, args.bf16), [StreamBatch(x, y)],
                                lambda batch: batch.x.numel())
    rates = in_turns(contestants, args.rounds, args.seconds)
    base = max(rates[args.settings[0]])
    precision = "bf16 autocast" if args.bf16 else "fp32"
    print(f"{args.num_layers} x {args.hidden_size}, batches of {args.batch_size} x {args.seq_len}, "
          f"{torch.get_num_threads()} threads, {precision}; best of {args.rounds} rounds of {args.seconds:g} s")
    print(markdown_table(["setting", "tokens/s", f"/ {args.settings[0]}", "rounds"],
                         [[setting, f"{max(r):,.0f}", f"{max(r) / base:.2f}", ", ".join(f"{v:,.0f}" for v in r)]
                          for setting, r in rates.items()]))


if __name__ == "__main__":
    main()
