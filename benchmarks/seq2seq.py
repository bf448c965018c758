"""Sequence to sequence and CTC on rnnkit against the same models written as
plain torch.nn loops, in one process: the best of ``--rounds`` rounds in which
the contestants take turns, each running for ``--seconds`` a round.

1. Training (forward, backward, AdamW step) of an attentional Seq2Seq, target
   tokens per second (each sentence's </s> counted, as the loss counts it):
   rnnkit's ``Seq2Seq(attention="general")`` against :class:`PlainSeq2Seq`
   (nn.Embedding, bidirectional nn.LSTM over packed sequences, the final
   states of each layer's two directions concatenated as the decoder's
   (h, c), nn.LSTMCell layers of width 2H reading [E[y_{t-1}] ; h̃_{t-1}],
   Luong's general score, h̃_t = tanh(W_c [c_t ; h_t]), Linear to V + 1).
   Synthetic G2P-shaped batches (CMUdict's sizes): sources of 4-12 ids over
   28 symbols, targets of 3-10 over 40, batch 128, H 256 a direction, 2
   layers, embedding 64.
2. Training of a CTC recogniser, frames per second: rnnkit's CTCRecognizer
   against :class:`PlainCTC` (bidirectional nn.LSTM over packed sequences,
   Linear, log_softmax, F.ctc_loss). Batches of 16 utterances of 100-200
   frames of 80 features (FSDD digits at frame stack 2), transcripts of 3-7
   labels over 10 labels + blank; H 128, 2 layers.
3. Decoding, sentences per second: ``rnnkit.training.decode.decode`` of 256
   synthetic sources, batched (batch_size 64) against one sentence at a time
   (batch_size 1), beam 1 and 5, an untrained Seq2Seq (max_length 12), fp32.

Training runs in fp32 and under bf16 autocast when the CPU has bf16 matrix
units. Dropout is 0 in both models. The two sides have the same parameters
tensor for tensor (rnnkit names and packs them as torch.nn: W_ih, W_hh, b_ih,
b_hh per layer and direction); before timing, rnnkit's weights are copied into
the plain model and the two losses are asserted equal on a small fp32 batch.

    python benchmarks/seq2seq.py [--rounds 3] [--seconds 5] [--hidden-size 256] [--num-layers 2]
                                 [--batch-size 128] [--precisions auto]

Prints the command, then one markdown table per measurement as it finishes.
"""

import argparse
import re
import shlex
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.data.pairs import collate_pairs
from rnnkit.data.speech import collate_speech
from rnnkit.kernels.memory import keep_freed_memory
from rnnkit.layers import engines_in
from rnnkit.models.ctc import CTCRecognizer
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.training.decode import decode
from rnnkit.training.device import bf16_supported

from common import in_turns, markdown_table

SOURCE_VOCAB, TARGET_VOCAB, EMBEDDING = 28, 40, 64
FEATURES, LABELS, UTTERANCES, CTC_HIDDEN = 80, 11, 16, 128  # LABELS: 10 + the blank


def encode(lstm: nn.LSTM, e, lengths):
    """A bidirectional nn.LSTM over packed sequences: e (B, S, I) -> outputs (B, S, 2H) (zero past each
    length) and the final (h, c), each (L*2, B, H), in the batch's order."""
    packed = pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
    out, state = lstm(packed)
    return pad_packed_sequence(out, batch_first=True, total_length=e.shape[1])[0], state


class PlainSeq2Seq(nn.Module):
    """The Seq2Seq of the module docstring in torch.nn; ``loss(batch)`` as rnnkit's."""

    def __init__(self, source_vocab: int, V: int, E: int, H: int, L: int):
        super().__init__()
        self.source_embedding = nn.Embedding(source_vocab, E)
        self.encoder = nn.LSTM(E, H, L, batch_first=True, bidirectional=True)
        self.embedding = nn.Embedding(V + 1, E)  # id V: <s>
        self.cells = nn.ModuleList(nn.LSTMCell(E + 2 * H if k == 0 else 2 * H, 2 * H) for k in range(L))
        self.attention = nn.Linear(2 * H, 2 * H, bias=False)  # W_a
        self.combine = nn.Linear(4 * H, 2 * H)  # W_c
        self.head = nn.Linear(2 * H, V + 1)  # id V: </s>
        self.V = V

    def loss(self, batch):
        x, x_lengths, y, y_lengths = batch
        B, U = y.shape
        o, (h, c) = encode(self.encoder, self.source_embedding(x), x_lengths)  # (B, S, 2H), (L*2, B, H)
        L = len(self.cells)
        h, c = (torch.cat([s.view(L, 2, B, -1)[:, 0], s.view(L, 2, B, -1)[:, 1]], -1) for s in (h, c))  # (L, B, 2H)
        state = [(h[k], c[k]) for k in range(L)]
        keys = self.attention(o)  # W_a o_s  (B, S, 2H)
        mask = torch.arange(x.shape[1])[None, :] < x_lengths[:, None]  # (B, S) True at valid positions
        inputs = self.embedding(torch.cat([y.new_full((B, 1), self.V), y.clamp_min(0)], 1))  # <s> y_1..y_U
        targets = F.pad(y, (0, 1), value=-100)  # (B, U + 1): y_1..y_U, </s>
        targets[torch.arange(B), y_lengths] = self.V
        feed, outs = o.new_zeros(B, o.shape[-1]), []
        for t in range(U + 1):
            q = torch.cat([inputs[:, t], feed], -1)  # (B, E + 2H) input feeding
            for k, cell in enumerate(self.cells):
                state[k] = cell(q, state[k])
                q = state[k][0]  # (B, 2H)
            scores = torch.einsum("bf,bsf->bs", q, keys).float().masked_fill(~mask, float("-inf"))
            context = torch.einsum("bs,bsf->bf", F.softmax(scores, -1).to(o.dtype), o)  # (B, 2H)
            feed = torch.tanh(self.combine(torch.cat([context, q], -1)))  # h̃_t
            outs.append(feed)
        logits = self.head(torch.stack(outs, 1)).float()  # (B, U + 1, V + 1)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100), None


class PlainCTC(nn.Module):
    """The CTC recogniser in torch.nn; ``loss(batch)`` as rnnkit's (nats per label)."""

    def __init__(self, input_size: int, V: int, H: int, L: int):
        super().__init__()
        self.encoder = nn.LSTM(input_size, H, L, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * H, V)

    def loss(self, batch):
        x, x_lengths, y, y_lengths = batch
        o, _ = encode(self.encoder, x, x_lengths)  # (B, T, 2H)
        log_probs = self.head(o).float().log_softmax(-1)  # (B, T, V)
        total = F.ctc_loss(log_probs.transpose(0, 1),  # ctc_loss wants time first: (T, B, V)
                           y[y != -100], x_lengths, y_lengths, reduction="sum")
        return total / y_lengths.sum(), None


def rnnkit_name(name: str) -> str:
    """The rnnkit parameter a plain model's parameter corresponds to."""
    m = re.fullmatch(r"encoder\.(weight|bias)_(ih|hh)_l(\d+)(_reverse)?", name)
    if m:  # rnnkit's cells: layer k forward at 2k, backward at 2k + 1
        return f"encoder.layer.cells.{2 * int(m[3]) + bool(m[4])}.{m[1]}_{m[2]}"
    return {"source_embedding.weight": "encoder.embedding.weight",
            "attention.weight": "attention.weight.weight"}.get(name, name)


def check_same(plain: nn.Module, model: nn.Module, batch) -> None:
    """Copy rnnkit's weights into the plain model and assert the same parameters and the same fp32 loss."""
    count = {m: sum(p.numel() for p in m.parameters()) for m in (plain, model)}
    assert count[plain] == count[model], f"parameters: plain {count[plain]:,}, rnnkit {count[model]:,}"
    weights = model.state_dict()
    plain.load_state_dict({n: weights[rnnkit_name(n)] for n in plain.state_dict()})
    torch.testing.assert_close(plain.loss(batch)[0], model.loss(batch)[0], rtol=1e-4, atol=1e-5)


def trainer(model: nn.Module, precision: str):
    """One training step (forward, backward, AdamW) of ``model`` on a batch."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(batch):
        with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            loss, _ = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def target_tokens(batch) -> int:
    """A seq2seq batch's target tokens, each sentence's </s> included (as the loss counts them)."""
    return int((batch.y_lengths + 1).sum())


def frames(batch) -> int:
    """A speech batch's valid frames."""
    return int(batch.x_lengths.sum())


def contest(contestants: dict, args) -> dict:
    """The best rate of each contestant, name -> (work, items, units), over ``args.rounds`` rounds in turns."""
    return {name: max(rates) for name, rates in in_turns(contestants, args.rounds, args.seconds).items()}


def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}\n\n" + markdown_table(columns, rows), flush=True)


def training(title: str, plain: nn.Module, model: nn.Module, batches: list, units, precisions: list, args):
    """Time the training steps of both models in each precision and print their table."""
    rows = []
    for precision in precisions:
        best = contest({"plain": (trainer(plain, precision), batches, units),
                        "rnnkit": (trainer(model, precision), batches, units)}, args)
        rows.append([precision, f"{best['plain']:,.0f}", f"{best['rnnkit']:,.0f}",
                     f"{best['rnnkit'] / best['plain']:.2f}"])
    table(f"{title}; rnnkit's encoder engine {engines_in(model, 'cpu')['encoder.layer']})",
          ["precision", "plain torch.nn", "rnnkit", "rnnkit / plain"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement per round")
    parser.add_argument("--hidden-size", type=int, default=256, help="seq2seq units a direction (CTC: 128)")
    parser.add_argument("--num-layers", type=int, default=2, help="seq2seq and CTC")
    parser.add_argument("--batch-size", type=int, default=128, help="seq2seq training batch")
    parser.add_argument("--precisions", default="auto", help="fp32,bf16 or auto (bf16 where the CPU has it)")
    args = parser.parse_args()
    cpu_bf16 = bf16_supported(torch.device("cpu"))
    precisions = (["fp32", "bf16"] if cpu_bf16 else ["fp32"]) if args.precisions == "auto" \
        else args.precisions.split(",")
    if not set(precisions) <= {"fp32", "bf16"} or ("bf16" in precisions and not cpu_bf16):
        parser.error(f"--precisions: expected fp32, bf16 (this CPU {'has' if cpu_bf16 else 'lacks'} bf16) "
                     f"or auto, got {args.precisions!r}")
    keep_freed_memory()  # as the Trainer does
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    H, L, B = args.hidden_size, args.num_layers, args.batch_size
    print("    python benchmarks/seq2seq.py " + shlex.join(sys.argv[1:]))
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, bf16 {cpu_bf16}; "
          f"best of {args.rounds} rounds of {args.seconds:g} s per contestant, in turns")

    def sources(n):
        return [rng.integers(1, SOURCE_VOCAB, rng.integers(4, 13)) for _ in range(n)]  # id 0 is padding

    def pairs(n):
        return collate_pairs(sources(n), [rng.integers(0, TARGET_VOCAB, rng.integers(3, 11)) for _ in range(n)])

    config = dict(hidden_size=H, num_layers=L, embedding_dim=EMBEDDING, attention="general", dropout=0.0)
    model = Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, **config)
    plain = PlainSeq2Seq(SOURCE_VOCAB, TARGET_VOCAB, EMBEDDING, H, L)
    check_same(plain, model, pairs(8))
    batches = [pairs(B) for _ in range(4)]
    training(f"Seq2Seq training, target tokens/s (batch {B}, {L} x {H} a direction, embedding {EMBEDDING}, "
             f"general attention", plain, model, batches, target_tokens, precisions, args)

    def utterances(n):
        return collate_speech([torch.randn(int(rng.integers(100, 201)), FEATURES) for _ in range(n)],
                              [rng.integers(1, LABELS, rng.integers(3, 8)) for _ in range(n)])

    model = CTCRecognizer(FEATURES, LABELS, hidden_size=CTC_HIDDEN, num_layers=L, dropout=0.0)
    plain = PlainCTC(FEATURES, LABELS, CTC_HIDDEN, L)
    check_same(plain, model, utterances(4))
    batches = [utterances(UTTERANCES) for _ in range(4)]
    training(f"CTC training, frames/s (batch {UTTERANCES}, 100-200 frames of {FEATURES}, {L} x {CTC_HIDDEN} a "
             f"direction", plain, model, batches, frames, precisions, args)

    model = Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, **config).eval()
    corpus = sources(256)
    rows = []
    for beam in (1, 5):
        def run(batch_size, beam=beam):
            return lambda chunk: decode(model, chunk, beam, max_length=12, batch_size=batch_size)
        # one at a time: a source a call, in turn; batched: the whole corpus a call
        best = contest({"single": (run(1), [[s] for s in corpus], len), "batched": (run(64), [corpus], len)}, args)
        rows.append([str(beam), f"{best['single']:,.1f}", f"{best['batched']:,.1f}",
                     f"{best['batched'] / best['single']:.2f}"])
    table(f"Decoding, sentences/s ({len(corpus)} sources of 4-12 ids, untrained Seq2Seq, max_length 12, fp32)",
          ["beam", "one at a time", "batched (64)", "speed-up"], rows)


if __name__ == "__main__":
    main()
