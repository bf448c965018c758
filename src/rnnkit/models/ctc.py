"""A speech recogniser trained with connectionist temporal classification
(CTC; Graves et al. 2006, "Connectionist temporal classification: labelling
unsegmented sequence data with recurrent neural networks").

Shapes: B batch, T frames (stacked feature steps), I features per frame,
F encoder outputs per frame, V labels including the blank (id 0,
:data:`rnnkit.models.ctc_search.BLANK`), U transcript length.

The model reads feature vectors x_1..x_T and gives a distribution over the
labels at every frame, independently given x::

    o_1..o_T = Encoder(x_1..x_T)                       (B, T, F)  bidirectional by default
    y_t = log_softmax(W dropout(o_t) + b)              (B, T, V)  y_t(k) = log p(k at t | x)

An alignment π (one label per frame, blanks allowed) has probability
Π_t p(π_t at t | x); it collapses to a labelling B(π) by merging repeated
labels and dropping blanks ("a a - a b" -> "a a b"). A transcript ℓ is the
sum over every alignment that collapses to it, and the loss its negative log::

    p(ℓ | x) = Σ_{π : B(π) = ℓ} Π_t p(π_t at t | x)
    L = -log p(ℓ | x)

computed by the forward-backward recursion of ``F.ctc_loss``. No frame-level
alignment is needed; ℓ can only be emitted if T >= U + (adjacent repeats in ℓ),
which :class:`rnnkit.data.speech.SpeechData` guarantees.

Decoding (:mod:`rnnkit.models.ctc_search`): best path (the likeliest label
per frame, collapsed) or prefix beam search, optionally fused with a
character language model through :class:`LanguageModelScorer`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.batches import PairBatch
from rnnkit.errors import ConfigError, DataError
from rnnkit.layers import length_mask
from rnnkit.layers.dropout import dropout
from rnnkit.models.ctc_search import BLANK, PrefixScorer, ctc_greedy, ctc_prefix_beam_search
from rnnkit.models.encoder import Encoder, EncoderConfig, reading_both_ways


class CTCRecognizer(nn.Module):
    """Args: ``num_features`` (I, features per frame), ``num_labels`` (V, the
    blank at id 0 included) and the fields of :class:`rnnkit.models.encoder.EncoderConfig`
    as keywords (``bidirectional`` None means True).

    ``forward(x, lengths, targets=None, target_lengths=None) -> (log_probs
    (B, T, V), loss)`` for features x (B, T, I) padded after each utterance
    and lengths (B,), loss the CTC loss per target label (None without
    targets); ``loss(batch)`` the same on a :class:`PairBatch`; ``decode`` the
    label ids of each utterance (no blanks); ``posteriors`` its per-frame
    probabilities.
    """

    def __init__(self, num_features: int, num_labels: int, **config):
        super().__init__()
        self.config = reading_both_ways(config, EncoderConfig)
        if num_labels < 2:
            raise ConfigError(f"CTCRecognizer: need the blank and at least 1 label, got num_labels={num_labels}")
        if num_features < 1:
            raise ConfigError(f"CTCRecognizer: need at least 1 feature per frame, got num_features={num_features}")
        self.num_features = num_features
        self.num_labels = num_labels
        self.encoder = Encoder(0, self.config, input_size=num_features)  # vocab_size 0: it reads vectors
        self.head = nn.Linear(self.encoder.output_size, num_labels)

    def forward(self, x: Tensor, lengths: Tensor, targets: Tensor | None = None,
                target_lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(log-probabilities per frame (B, T, V), in fp32 at least (also under
        bf16 autocast), frames past a length holding values to be ignored; the
        CTC loss of :meth:`loss` against ``targets`` (B, U) padded after
        ``target_lengths`` (B,), or None without them)."""
        if x.dim() != 3 or x.shape[-1] != self.num_features:
            raise ValueError(f"CTCRecognizer: expected features of shape (B, T, {self.num_features}), "
                             f"got {tuple(x.shape)}")
        outputs, _ = self.encoder(x, lengths)  # (B, T, F)
        logits = self.head(dropout(outputs, self.config.dropout, self.training))  # (B, T, V)
        log_probs = logits.to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(-1)
        if targets is None:
            return log_probs, None
        flat = targets[length_mask(target_lengths, targets.shape[1])]  # (Σ U_b,), the labels back to back
        total = F.ctc_loss(log_probs.transpose(0, 1),  # ctc_loss wants time first: (T, B, V)
                           flat, lengths, target_lengths, blank=BLANK, reduction="sum", zero_infinity=False)
        return log_probs, total / target_lengths.sum()

    def loss(self, batch: PairBatch, state=None) -> tuple[Tensor, None]:
        """The training contract: a :class:`PairBatch` (x, x_lengths, y, y_lengths) -> (CTC loss, no carried
        state).

        The loss is Σ_b -log p(ℓ_b | x_b) / Σ_b U_b, nats per target label, as
        the other models' losses are per token: a batch of long transcripts
        does not weigh more than one of short ones, and the number compares
        across batches. ``zero_infinity`` stays off: an impossible transcript
        is the data's error (refused at load), not a loss to hide.
        """
        return self(batch.x, batch.x_lengths, batch.y, batch.y_lengths)[1], None

    def loss_terms(self, batch) -> int:
        """How many labels :meth:`loss`'s sum is divided by."""
        return int(batch.y_lengths.sum())

    @torch.no_grad()
    def decode(self, x: Tensor, lengths: Tensor, beam_size: int = 1, lm: PrefixScorer | None = None,
               lm_weight: float = 0.0, insertion_bonus: float = 0.0) -> list[list[int]]:
        """Label ids (no blanks) of each utterance: best path for ``beam_size``
        1, else the best prefix of a prefix beam search over the utterance's
        valid frames, fused with ``lm`` (weight ``lm_weight``) and an insertion
        bonus per label. Call ``eval()`` first, as for any prediction."""
        if beam_size < 1:
            raise ValueError(f"CTCRecognizer.decode: beam_size must be at least 1, got {beam_size}")
        log_probs, _ = self(x, lengths)  # (B, T, V)
        if beam_size == 1:
            return ctc_greedy(log_probs, lengths)
        best = []
        for b, n in enumerate(lengths.tolist()):
            hyps = ctc_prefix_beam_search(log_probs[b, :n], beam_size, lm=lm, lm_weight=lm_weight,
                                          insertion_bonus=insertion_bonus)
            best.append(hyps[0][0] if hyps else [])
        return best

    @torch.no_grad()
    def posteriors(self, x: Tensor, lengths: Tensor) -> list[Tensor]:
        """p(k at t | x) of each utterance over its valid frames: B tensors (T_b, V)."""
        probs = self(x, lengths)[0].exp()  # (B, T, V)
        return [probs[b, :n] for b, n in enumerate(lengths.tolist())]


class LanguageModelScorer:
    """A character :class:`rnnkit.models.LanguageModel` as a
    :class:`rnnkit.models.ctc_search.PrefixScorer` over CTC labels, for shallow fusion.

    Args: ``lm`` (put in eval mode), ``lm_tokenizer`` (the LM's tokenizer),
    ``target_tokenizer`` (the recogniser's transcripts' :class:`CharTokenizer`;
    CTC label k >= 1 is its token k - 1). Each label maps to the LM's token of
    the same character; a character the LM cannot write as one token is an
    error here, not a silent -inf later.

    A state is (log p_lm(next token | prefix) (V_lm,), the LM's recurrent
    state). ``initial()`` reads the LM's default prime (a newline: the texts
    it learnt start after one); ``log_probs(state)`` is (V,) over CTC label
    ids, -inf at the blank (which the search ignores); ``advance(state,
    label)`` reads one more character: one LM step.
    """

    def __init__(self, lm: nn.Module, lm_tokenizer, target_tokenizer):
        if getattr(lm, "num_conditions", 0):
            raise ConfigError("LanguageModelScorer: the language model is conditioned on labels; "
                              "train one on the transcripts alone")
        self.lm = lm.eval()
        self.device = lm.head.weight.device
        chars = [target_tokenizer.decode([i]) for i in range(target_tokenizer.vocab_size)]
        token_ids, missing = [], []
        for ch in chars:
            ids = _lm_ids(lm_tokenizer, ch)
            if len(ids) != 1 or lm_tokenizer.decode(ids) != ch:
                missing.append(ch)
            else:
                token_ids.append(int(ids[0]))
        if missing:
            shown = ", ".join(repr(c) for c in missing[:10]) + (", ..." if len(missing) > 10 else "")
            raise DataError(f"the language model never saw {len(missing)} character(s) of the transcripts: "
                            f"{shown}; train it (--tokenizer char) on text that has them")
        self.token_ids = torch.tensor(token_ids, dtype=torch.long, device=self.device)  # (V - 1,), label k -> [k - 1]
        self.prime = [int(i) for i in lm_tokenizer.encode(lm_tokenizer.default_prime())]

    @torch.no_grad()
    def _read(self, ids: list[int], state):
        (logits, state), _ = self.lm(torch.tensor([ids], device=self.device), state=state)  # (1, T, V_lm)
        return logits[0, -1].float().log_softmax(-1), state  # (V_lm,)

    def initial(self):
        """The state after the LM's default prime."""
        return self._read(self.prime, None)

    def log_probs(self, state) -> Tensor:
        """log p(next label | prefix) (V,) over the CTC labels, -inf at the blank."""
        lm_log_probs, _ = state
        out = torch.full((len(self.token_ids) + 1,), float("-inf"), device=self.device)  # (V,)
        out[1:] = lm_log_probs[self.token_ids]
        return out

    def advance(self, state, label: int):
        """The state after appending ``label``: one LM step on its character."""
        return self._read([int(self.token_ids[label - 1])], state[1])


def _lm_ids(lm_tokenizer, ch: str) -> list[int]:
    """The LM's token ids for one character; none when its tokenizer refuses it."""
    try:
        return [int(i) for i in lm_tokenizer.encode(ch)]
    except DataError:
        return []
