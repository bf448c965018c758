"""``rnnkit <command>``: train, sample, eval, demo, bench.

Thin: flags are generated from the config dataclasses (``--kebab-case`` of
each field), parsed into them, and handed to the library. Expected errors
print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
from pathlib import Path

import torch

from rnnkit.cli.options import Choice, add_config_flags, flag, pick, refuse_changes, refuse_unused, train_settings
from rnnkit.config import DataConfig, ModelConfig, SampleConfig, TrainConfig, from_dict, to_dict
from rnnkit.errors import ConfigError, DataError, RnnkitError, TrainingError
from rnnkit.experiments import EXPERIMENTS, reads_data
from rnnkit.kernels import ENGINES, choose_engine

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        raise ConfigError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnkit", description="Recurrent neural networks on PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train a language model (text), classifier (CSV/TSV of text and "
                                         "label) or tagger (CoNLL columns)")
    train.add_argument("path", nargs="?", help="training file (optional with --resume)")
    train.add_argument("--config", help="JSON file of settings (flags override it)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--dry-run", action="store_true", help="print parameters, tokens a step and the memory the "
                       "run needs (measured on its heaviest batch) against what is available, then stop: nothing is "
                       "trained or written")
    for cls in (ModelConfig, DataConfig, TrainConfig):
        add_config_flags(train, cls, skip=("path",))

    lr_find = sub.add_parser("lr-find", help="the learning-rate range test (Smith 2017): the loss against an "
                                             "exponentially rising learning rate, plotted, with a suggested rate")
    lr_find.add_argument("path", help="training file")
    lr_find.add_argument("--config", help="JSON file of settings (flags override it)")
    lr_find.add_argument("--start-lr", type=float, default=1e-6, help="the first step's rate (default 1e-6)")
    lr_find.add_argument("--end-lr", type=float, default=1.0, help="the last step's rate (default 1)")
    lr_find.add_argument("--steps", type=int, default=300, help="steps from one to the other (default 300)")
    for cls in (ModelConfig, DataConfig, TrainConfig):
        add_config_flags(lr_find, cls, skip=("path",))

    sample = sub.add_parser("sample", help="generate text from a trained run")
    sample.add_argument("run", help="run folder")
    sample.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    add_config_flags(sample, SampleConfig)

    predict = sub.add_parser("predict", help="labels (classify) or tags (tag) for a file, written in its format")
    predict.add_argument("run", help="run folder")
    predict.add_argument("input", help="CSV/TSV of texts (classify) or CoNLL file of words (tag)")
    predict.add_argument("--output", help="write here instead of stdout")
    predict.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    predict.add_argument("--engine", choices=ENGINES,
                         help="recurrent engine (default: the one the run trained on)")
    _search_flags(predict)
    predict.add_argument("--n-best", type=int, default=None,
                         help="seq2seq: write the n best outputs of each source, with their log-probabilities")
    predict.add_argument("--attention-plot", metavar="PNG",
                         help="seq2seq: draw the first source's attention over its output as a heat map")
    predict.add_argument("--posteriorgram", metavar="PNG",
                         help="ctc: draw the first utterance's label probabilities over time")

    ev = sub.add_parser("eval", help="loss, bits/char and perplexity of a run")
    ev.add_argument("run", help="run folder")
    ev.add_argument("path", nargs="?", help="text to evaluate (default: the run's validation split)")
    ev.add_argument("--split", choices=("train", "val", "test"),
                    help="the split of the run's corpus to score, without PATH (default: val)")
    ev.add_argument("--window", type=int, default=None,
                    help="score independent windows of this many tokens from a zero state "
                         "(default: the whole text as one stream, state carried)")
    ev.add_argument("--dynamic", type=float, default=None, metavar="LR",
                    help="dynamic evaluation: after scoring each segment of the stream, take an SGD "
                         "step of this size on it (the run's weights are not changed)")
    ev.add_argument("--segment", type=int, default=None,
                    help="tokens per segment of --dynamic (default 50)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ev.add_argument("--engine", choices=ENGINES,
                    help="recurrent engine (default: the one the run trained on)")
    _search_flags(ev)

    report = sub.add_parser("report", help="one self-contained HTML file that shows a run: curves, samples, "
                                           "gradient flow, spectral radius, saturation, units over text, "
                                           "attention or CTC posteriorgrams")
    report.add_argument("run", help="run folder")
    report.add_argument("--out", help="the HTML file to write (default RUN/report.html)")
    report.add_argument("--text", help="lm: a text to draw units and surprisal over (default: the start of the "
                                       "run's validation split)")
    report.add_argument("--chars", type=int, default=2000, help="lm: tokens of that text to read (default 2000)")
    report.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))

    experiment = sub.add_parser("experiment", help="a lecture's claim as an experiment: prints a table, draws "
                                                   "a plot (linear: h_t = W h_(t-1) and its spectral radius; "
                                                   "symmetry: identical units stay identical; clipping: on and off "
                                                   "where gradients explode; vanishing: RNN, LSTM and GRU on the "
                                                   "adding problem; optimizers: SGD to Adam, each at its swept "
                                                   "rate; regularisation: dropout, L2, L1, early stopping; "
                                                   "echo-state: reservoirs against an LSTM on EEG)")
    experiment.add_argument("name", choices=tuple(EXPERIMENTS))
    experiment.add_argument("--out", default="runs/experiments", help="folder for NAME.png (default runs/experiments)")
    experiment.add_argument("--data", help="echo-state: the Bonn EEG recordings (bonn_eeg_dataset.zip)")
    experiment.add_argument("--quick", action="store_true", help="the tests' small configuration")

    digits = sub.add_parser("digits", help="spoken digit strings for --task ctc, joined from the Free Spoken "
                                           "Digit Dataset's recordings: wav files and manifests")
    digits.add_argument("recordings", help="FSDD's recordings folder ({digit}_{speaker}_{take}.wav)")
    digits.add_argument("out", help="folder for the utterances and train.tsv, test.tsv, speaker.tsv")
    digits.add_argument("--seed", type=int, default=0, help="(default 0)")
    digits.add_argument("--num-train", type=int, default=3000, help="training utterances (default 3000)")
    digits.add_argument("--num-test", type=int, default=500, help="test (and held-out speaker) utterances "
                                                                  "(default 500)")
    digits.add_argument("--held-out-speaker", default="theo",
                        help="a speaker kept out of train and test, for speaker.tsv (default theo; none: no one)")

    demo = sub.add_parser("demo", help="train on the Python standard library's source for ~2 minutes")
    demo.add_argument("--time-limit", type=float, default=120.0, help="seconds of training (default 120)")
    demo.add_argument("--out", default=None, help="run folder (default runs/demo-<time>)")
    bench = sub.add_parser("bench", help="training and generation speed against plain torch.nn and the "
                                         "machine's GEMM peak, and peak memory")
    bench.add_argument("--cells", default="lstm,gru,rnn", help="comma-separated (default lstm,gru,rnn)")
    bench.add_argument("--hidden-sizes", default="256,512,1024", help="comma-separated (default 256,512,1024)")
    bench.add_argument("--engines", default="fused,explicit", help="comma-separated (default fused,explicit)")
    bench.add_argument("--precisions", default="auto",
                       help="comma-separated fp32,bf16 (default auto: fp32, and bf16 where the CPU has it)")
    for name, kind, default in (("num-layers", int, 2), ("embedding-dim", int, 64), ("vocab-size", int, 65),
                                ("batch-size", int, 64), ("seq-len", int, 100), ("seconds", float, 3.0),
                                ("generate-chars", int, 500)):
        bench.add_argument("--" + name, type=kind, default=default, help=f"(default {default})")
    bench.add_argument("--rounds", type=int, default=2,
                       help="times each training loop runs, the loops of a model taking turns; "
                            "the best counts (default 2)")
    bench.add_argument("--no-memory", action="store_true", help="skip the peak-RSS processes")
    bench.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    return parser


def _search_flags(parser) -> None:
    parser.add_argument("--beam-size", type=int, default=None,
                        help="seq2seq and ctc: hypotheses kept per source (default 1: greedy decoding, "
                             "best path)")
    parser.add_argument("--length-penalty", type=float, default=None,
                        help="seq2seq beam search: rank finished outputs by log-probability / length^A "
                             "(default 1; 0 ranks by probability alone)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="seq2seq: the longest output in tokens (default 2 x the source's length + 10)")
    parser.add_argument("--lm", metavar="RUN", help="ctc: fuse this character language model's run into the "
                                                    "prefix beam search (shallow fusion)")
    parser.add_argument("--lm-weight", type=float, default=None, help="ctc: the weight of --lm (default 0.5)")
    parser.add_argument("--insertion-bonus", type=float, default=None,
                        help="ctc: added to a hypothesis's score for each character (default 0)")


# decoding flags -> the tasks they apply to
SEARCH = {"beam_size": ("seq2seq", "ctc"), "length_penalty": ("seq2seq",), "n_best": ("seq2seq",),
          "max_length": ("seq2seq",), "attention_plot": ("seq2seq",), "lm": ("ctc",), "lm_weight": ("ctc",),
          "insertion_bonus": ("ctc",), "posteriorgram": ("ctc",)}


def _search(args, task: str):
    """The decoding settings of a seq2seq or ctc run; for another run, an error for any of them."""
    from rnnkit.cli.ctc import Fusion
    from rnnkit.cli.seq2seq import Search

    for name, tasks in SEARCH.items():
        if getattr(args, name, None) is not None and task not in tasks:
            raise ConfigError(f"--{name.replace('_', '-')} needs a {' or '.join(tasks)} run; {args.run} is a "
                              f"{task} run, so here it would do nothing; drop it")
    if task == "ctc":
        if args.lm is None and (args.lm_weight is not None or args.insertion_bonus is not None):
            raise ConfigError("--lm-weight and --insertion-bonus shape the fusion with a language model: "
                              "add --lm RUN or drop them")
        return Fusion(args.beam_size or 1, args.lm, 0.5 if args.lm_weight is None else args.lm_weight,
                      args.insertion_bonus or 0.0).check()
    if task != "seq2seq":
        return None
    if args.length_penalty is not None and (args.beam_size or 1) == 1:
        raise ConfigError("--length-penalty ranks the outputs of a beam; greedy decoding has one: "
                          "add --beam-size K or drop it")
    return Search(args.beam_size or 1, 1.0 if args.length_penalty is None else args.length_penalty,
                  getattr(args, "n_best", None) or 1, args.max_length).check()


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "demo": cmd_demo,
                "bench": cmd_bench, "predict": cmd_predict, "digits": cmd_digits,
                "report": cmd_report, "experiment": cmd_experiment, "lr-find": cmd_lr_find}[args.command](args)
    except RnnkitError as e:
        print(f"rnnkit: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `rnnkit sample RUN | head`
        sys.stderr.close()
        return 0


# -- train ----------------------------------------------------------------------


def cmd_train(args) -> int:
    from rnnkit.training import distributed

    if not distributed.launched():
        return _train(args, print)
    device = distributed.join(pick(args, TrainConfig).get("device", "auto"))  # one of torchrun's processes
    code = _train(args, print if distributed.current().main else lambda *a, **k: None, device)
    # after an error, torchrun stops the other processes; destroying the group then could wait on them. After
    # success, all wait for all first: a gloo process that left while another still talked aborted at exit
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    return code


def cmd_lr_find(args) -> int:
    from rnnkit.training import distributed

    if distributed.launched():
        raise ConfigError("lr-find runs in one process; start it without torchrun")
    if not (0 < args.start_lr < args.end_lr) or args.steps < 2:
        raise ConfigError(f"lr-find needs 0 < --start-lr < --end-lr and --steps >= 2; got {args.start_lr:g}, "
                          f"{args.end_lr:g} and {args.steps}")
    args.resume = args.dry_run = False
    return _train(args, print, lr_find=(args.start_lr, args.end_lr, args.steps))


def _lr_find(model, data, train_cfg: TrainConfig, start: float, end: float, steps: int) -> int:
    from rnnkit.training.lr_find import range_test, range_test_figure
    from rnnkit.training.plots import png
    from rnnkit.training.runs import default_folder, write_output

    out = Path(train_cfg.out) if train_cfg.out else default_folder(data.config.path)
    print(f"rnnkit lr-find: {data.config.path}, {train_cfg.optimizer}, the rate from {start:g} to {end:g} over "
          f"{steps} steps; the weights are left behind, the curve goes to {out}", flush=True)
    test = range_test(model, data, train_cfg, start, end, steps)
    if not test.losses:
        raise TrainingError(f"the loss was not finite from the first step at rate {start:g}; lower --start-lr")
    write_output(out / "lr_find.png", png(range_test_figure(test, f"{data.config.path}, {train_cfg.optimizer}")))
    write_output(out / "lr_find.json", json.dumps(test.to_dict()).encode())
    low = test.lowest
    print(f"{len(test.losses)} steps ({test.stopped}); the lowest smoothed loss {test.smoothed[low]:.3f} at rate "
          f"{test.lrs[low]:.2g}: suggested --lr {test.suggestion:.2g}; the curve: {out / 'lr_find.png'}")
    return 0


def _train(args, say, device: str | None = None, lr_find: tuple | None = None) -> int:
    """``rnnkit train``; ``say`` prints (rank 0's) news, and ``device`` is torchrun's for this process;
    with ``lr_find`` (start, end, steps), ``rnnkit lr-find``: the range test instead of training."""
    from rnnkit.training import Trainer, read_config, resolve_device
    from rnnkit.training.footprint import refuse_oversized
    from rnnkit.training.lr_find import FIXED
    from rnnkit.training.runs import build_model, read_data

    model_s, data_s, train_s = train_settings(args)
    for name in sorted(set(train_s) & set(FIXED) if lr_find else ()):
        raise ConfigError(f"{flag(name)} does nothing in a learning-rate range test, which sets the rate and the "
                          f"steps itself and saves no weights; drop it")
    if device is not None:
        train_s["device"] = device.split(":")[0]  # cuda:LOCAL_RANK is the current device
    if args.resume:
        out = train_s.get("out")
        if not out:
            raise ConfigError("--resume needs --out RUN, the run folder to continue")
        doc = read_config(out)
        model_cfg, data_cfg = doc["model"], doc["data"]
        refuse_changes(model_s, model_cfg, out)
        refuse_changes(data_s, data_cfg, out)
        if args.path and Path(args.path).resolve() != Path(data_cfg.path).resolve():
            raise ConfigError(f"--resume continues the run on {data_cfg.path}; do not give another PATH")
        train_cfg = from_dict(TrainConfig, {**to_dict(doc["train"]), **train_s}, "train settings")
    else:
        if not args.path:
            raise ConfigError("train: give a text file to train on (or --resume --out RUN)")
        model_cfg = from_dict(ModelConfig, model_s, "model settings")
        data_cfg = from_dict(DataConfig, {**data_s, "path": args.path}, "data settings")
        train_cfg = from_dict(TrainConfig, train_s, "train settings")
    choice = Choice(model_cfg, data_cfg, train_cfg)
    if choice.recurrent:
        choose_engine(model_cfg.engine, model_cfg.cell, "cpu")  # a known cell, and an engine it has
    refuse_unused({*model_s, *data_s, *train_s}, choice)  # before any work
    data = read_data(data_cfg, doc if args.resume else None, spell=model_cfg.char_features > 0)
    if data_cfg.task == "ctc":
        data_cfg = data.config  # the sample rate filled in
    if args.resume and data.digest != doc.get("corpus_sha256"):
        raise DataError(f"{data_cfg.path} changed since the run started; resume needs the same corpus")
    build = functools.partial(build_model, data_cfg.task, data.tokenizer, model_cfg, getattr(data, "labels", None),
                              getattr(data, "target_tokenizer", None))
    with torch.device("meta"):  # the model's size, before memory is spent on it
        refuse_oversized(build(), train_cfg.optimizer, resolve_device(train_cfg.device))
    torch.manual_seed(train_cfg.seed)
    model = build()
    if model_cfg.embeddings and not args.resume:
        say(_start_embedding(model, data.tokenizer, model_cfg.embeddings), flush=True)
    if lr_find is not None:
        return _lr_find(model, data, train_cfg, *lr_find)
    trainer = Trainer(model, data, train_cfg)
    if not args.resume and trainer.holds_run():
        raise ConfigError(f"{trainer.out} already holds a run; pass --resume to continue it "
                          f"or choose another --out")
    n_params = sum(p.numel() for p in model.parameters())
    unit = {"seq2seq": "pairs", "ctc": "utterances"}.get(data_cfg.task, "examples" if hasattr(data, "labels")
                                                         else "tokens")
    labels = f", {len(data.labels)} labels" if hasattr(data, "labels") else ""
    say(f"rnnkit train --task {data_cfg.task}: {data_cfg.path} ({len(data.train):,} train / {len(data.val):,} "
          f"val {unit}, {_inputs(data)}{labels}); {model_cfg.num_layers} x {model_cfg.hidden_size} "
          f"{'bidirectional ' if model.config.bidirectional else ''}"
          f"{model_cfg.cell.upper() if choice.recurrent else 'TDNN'}, {n_params:,} parameters, "
          f"on {trainer.device} in {trainer.precision}, {_engines(trainer.engines)}; budget: "
          + ", ".join(f"{k.replace('_', '-')} {v:g}" for k, v in trainer.budget.items() if v)
          + f"; run folder {trainer.out}" + (f"; {trainer.group.world} processes" if trainer.group else ""),
          flush=True)
    if args.dry_run:
        footprint = trainer.footprint()
        say(footprint.describe())
        trainer.check_memory(footprint)
        return 0
    result = trainer.fit(resume=args.resume)
    if result["stopped"] == "interrupted":
        say(f"interrupted at step {result['step']}; saved {result['out']}; continue with: "
              f"rnnkit train --resume --out {result['out']}", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = f"done ({result['stopped']}) after {result['step']:,} steps, {result['elapsed']:.0f}s"
    if "val_bpc" in result:
        unit = data.tokenizer.kind  # char, byte, word or bpe
        summary += (f"; val loss {result['val_loss']:.4f} nats/{unit} ({result['val_bpc']:.3f} bits/{unit}, "
                    f"perplexity {result['val_perplexity']:.2f}), best {result['best_val']:.4f}")
    elif "val_loss" in result:
        summary += "; val " + _scores(result, "val_")
    test = trainer.test()
    if test:
        summary += "; test (best checkpoint) " + _scores(test)
    use = f"sample with: rnnkit sample {result['out']}" if data_cfg.task == "lm" else \
        f"score the decoded outputs with: rnnkit eval {result['out']}" if data_cfg.task in ("seq2seq", "ctc") else \
        f"predict with: rnnkit predict {result['out']} INPUT"
    say(summary + "; " + use)
    return 0


def _start_embedding(model, tokenizer, path: str) -> str:
    """Initialise the model's word embedding from a vectors file; a line saying how much it covered."""
    from rnnkit.models.glove import init_embedding

    embedding = getattr(model, "embedding", None) or getattr(getattr(model, "encoder", None), "embedding", None)
    if getattr(tokenizer, "words", None) is None or embedding is None:
        raise ConfigError("--embeddings needs word tokens and an embedding: use --tokenizer word and "
                          "--embedding-dim > 0")
    found = init_embedding(embedding, tokenizer.words, path)
    return f"embeddings: {found:,} of {tokenizer.vocab_size:,} words from {path}"


def _engines(engines: dict[str, str]) -> str:
    """"explicit engine", or with layers on different engines "engines: explicit (encoder.layer), ..."."""
    if not engines:
        return "no recurrent layer"
    if len(set(engines.values())) == 1:
        return f"{next(iter(engines.values()))} engine"
    return "engines: " + ", ".join(f"{engine} ({name})" for name, engine in engines.items())


def _inputs(data) -> str:
    features = getattr(data.tokenizer, "num_features", None)
    if hasattr(data, "target_tokenizer") and features:  # ctc
        skipped = sum(getattr(data, split).skipped for split in ("train", "val", "test"))
        return (f"{features} features a step -> {data.target_tokenizer.vocab_size} characters"
                + (f", {skipped} utterances skipped: transcript too long for the audio" if skipped else ""))
    if hasattr(data, "target_tokenizer"):
        return f"vocabularies {data.vocab_size} -> {data.target_tokenizer.vocab_size}"
    return f"{features} features a sample" if features else f"vocabulary {data.vocab_size}"


def _scores(metrics: dict, prefix: str = "") -> str:
    names = {"loss": "loss", "bpc": "bpc", "perplexity": "perplexity", "accuracy": "accuracy", "f1": "F1",
             "token_error_rate": "token error rate", "sequence_error_rate": "sequence error rate", "bleu": "BLEU"}
    return ", ".join(f"{label} {metrics[prefix + key]:.4f}" for key, label in names.items()
                     if prefix + key in metrics)


# -- sample ---------------------------------------------------------------------


def cmd_sample(args) -> int:
    from rnnkit.training import load_run, resolve_device, resolve_precision

    given = pick(args, SampleConfig)
    cfg = from_dict(SampleConfig, given, "sample settings")
    if "prime" in given and "prime_file" in given:
        raise ConfigError("--prime and --prime-file both give the prime text; give one of them")
    random_only = sorted({"top_k", "top_p", "seed"} & set(given))
    if cfg.temperature == 0 and random_only:
        raise ConfigError(f"--{random_only[0].replace('_', '-')} shapes random sampling, which --temperature 0 "
                          f"(greedy) does not do; drop one of them")
    device = resolve_device(args.device)
    precision = resolve_precision(cfg.precision, device)  # refuses bf16 where the hardware has no bf16 units
    model, tokenizer, doc = load_run(args.run, device)
    if doc["data"].task != "lm":
        raise ConfigError(f"{args.run} is a {doc['data'].task} run, not a language model; "
                          f"use `rnnkit predict {args.run} INPUT`")
    labels = doc.get("labels")
    condition, end = None, None
    if labels:  # a conditioned model writes one text (a line) of the label asked for
        if cfg.condition not in labels:
            raise ConfigError(f"{args.run} writes texts of a label: pass --condition with one of "
                              f"{', '.join(labels)}")
        condition, end = labels.index(cfg.condition), int(tokenizer.encode("\n")[-1])
    elif cfg.condition is not None:
        raise ConfigError(f"{args.run} is not conditioned on labels; drop --condition")
    prime = cfg.prime
    if cfg.prime_file:
        from rnnkit.data import read_text

        prime = read_text(cfg.prime_file, "char")
    if labels:  # texts were learnt as "\n" + text + "\n": start a text, and echo only the user's prime
        prime_ids = tokenizer.encode("\n" + prime, what="the prime text")
    else:
        prime = prime or tokenizer.default_prime()
        prime_ids = tokenizer.encode(prime, what="the prime text")
    seed = cfg.seed if cfg.seed is not None else torch.seed()
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    out = sys.stdout
    for n in range(cfg.num_samples):
        if cfg.num_samples > 1:
            out.write(f"{'-' * 20} sample {n + 1} {'-' * 20}\n")
        out.write(prime)
        decode = tokenizer.stream_decoder(prime) if tokenizer.kind == "word" else tokenizer.stream_decoder()
        for token in model.generate(prime_ids, cfg.length, cfg.temperature, cfg.top_k, cfg.top_p, generator,
                                    precision, condition):
            if token == end:  # a conditioned text ends at its newline
                break
            out.write(decode(token))
            out.flush()
        out.write("\n")
    return 0


# -- eval -----------------------------------------------------------------------


def cmd_eval(args) -> int:
    from rnnkit.data import LabelledData, TextData, read_text
    from rnnkit.data.files import exists
    from rnnkit.training import evaluate, evaluate_dynamic, load_run, resolve_device
    from rnnkit.training.evaluate import evaluate_texts

    if args.window is not None and args.window < 1:
        raise ConfigError(f"--window must be >= 1; got {args.window}")
    if args.dynamic is None and args.segment is not None:
        raise ConfigError("--segment sets the segments of dynamic evaluation; add --dynamic LR or drop it")
    if args.dynamic is not None:
        args.segment = 50 if args.segment is None else args.segment
        if args.window is not None:
            raise ConfigError("--dynamic reads the text as one stream; drop --window or --dynamic")
        if args.dynamic < 0 or args.segment < 1:
            raise ConfigError(f"--dynamic needs a step size >= 0 and --segment >= 1; "
                              f"got {args.dynamic} and {args.segment}")
    if args.path and args.split:
        raise ConfigError("--split picks a split of the run's corpus; with PATH the whole file is scored: "
                          "drop --split or PATH")
    model, tokenizer, doc = load_run(args.run, resolve_device(args.device), engine=args.engine)
    data_cfg, split = doc["data"], args.split or "val"
    search = _search(args, data_cfg.task)
    if data_cfg.task in ("seq2seq", "ctc"):
        from rnnkit.cli import ctc, seq2seq

        for name, value in (("window", args.window), ("dynamic", args.dynamic), ("segment", args.segment)):
            if value is not None:
                raise ConfigError(f"--{name} reads a language model's stream; {args.run} is a {data_cfg.task} "
                                  f"run: drop it")
        if data_cfg.task == "ctc":
            return ctc.run_eval(model, doc, args.path, split, search, args.json)
        return seq2seq.run_eval(args.run, model, doc, args.path, split, search, args.json)
    if data_cfg.task != "lm":
        raise ConfigError(f"{args.run} is a {data_cfg.task} run; score a labelled file with "
                          f"`rnnkit predict {args.run} INPUT` (accuracy and F1 go to stderr)")
    for path in (data_cfg.path, data_cfg.val_path, data_cfg.test_path):
        if not args.path and path and not exists(path):
            raise DataError(f"the run's corpus {path} is gone; give the text to evaluate as PATH")
    source = args.path or f"{data_cfg.path} ({split} split)"
    if data_cfg.condition_column:  # whole texts, each of its label: scored as the run validated them
        if args.window is not None or args.dynamic is not None:
            raise ConfigError(f"{args.run} reads whole texts of a label, not one stream: drop --window, --dynamic "
                              f"and --segment")
        whole = dataclasses.replace(data_cfg, val_path=None, test_path=None, val_fraction=0.0, test_fraction=0.0)
        data = LabelledData.from_file(args.path or data_cfg.path, whole if args.path else data_cfg, tokenizer,
                                      doc["labels"])
        result = {**evaluate_texts(model, data.eval_batches("train" if args.path else split)),
                  "protocol": "whole texts, each given its label"}
    else:
        if args.path:
            ids = torch.from_numpy(tokenizer.encode(read_text(args.path, tokenizer.kind), what=args.path))
        else:
            ids = getattr(TextData.from_file(data_cfg.path, data_cfg, tokenizer), split)
        if len(ids) < 2:
            raise DataError(f"{source} has fewer than 2 tokens to evaluate; give a longer text as PATH")
        if args.dynamic is not None:
            result = evaluate_dynamic(model, ids, args.dynamic, args.segment)
            result["protocol"] = f"one stream, dynamic (SGD step {args.dynamic:g} after each {args.segment} tokens)"
        else:
            result = evaluate(model, ids, streams=1, window=args.window)
            result["protocol"] = f"windows of {args.window}" if args.window else "one stream"
    if args.json:
        print(json.dumps({"source": str(source), **result}))
    else:
        print(f"{source}: {result['tokens']:,} predictions, {result['protocol']}\n"
              f"loss {result['loss']:.4f} nats/token | {result['bpc']:.4f} bits/token | "
              f"perplexity {result['perplexity']:.3f}")
    return 0


# -- predict --------------------------------------------------------------------


def cmd_predict(args) -> int:
    from rnnkit.cli.predict import run_predict
    from rnnkit.training import load_run, read_config, resolve_device

    task = read_config(args.run)["data"].task
    search = _search(args, task)
    if search is not None:
        from rnnkit.cli import ctc, seq2seq

        model, _, doc = load_run(args.run, resolve_device(args.device), engine=args.engine)
        if task == "ctc":
            return ctc.run_predict(model, doc, args.input, args.output, search, args.posteriorgram)
        return seq2seq.run_predict(model, doc, args.input, args.output, search, args.attention_plot)
    return run_predict(args.run, args.input, args.output, resolve_device(args.device), args.engine)


# -- report ---------------------------------------------------------------------


def cmd_report(args) -> int:
    from rnnkit.cli.report import run_report
    from rnnkit.training import resolve_device

    return run_report(args.run, args.out, args.text, args.chars, resolve_device(args.device))


# -- experiment -----------------------------------------------------------------


def cmd_experiment(args) -> int:
    from rnnkit.training.plots import png
    from rnnkit.training.runs import write_output

    if args.data and not reads_data(args.name):
        readers = " and ".join(name for name in EXPERIMENTS if reads_data(name))
        raise ConfigError(f"--data is read by the {readers} experiment only; {args.name} makes its own data")
    data = {"data": args.data} if reads_data(args.name) else {}
    table, figure = EXPERIMENTS[args.name].run(quick=args.quick, **data)
    target = Path(args.out) / f"{args.name}.png"
    write_output(target, png(figure))
    print(table + f"\n\nplot: {target}")
    return 0


# -- digits ---------------------------------------------------------------------


def cmd_digits(args) -> int:
    from rnnkit.cli.ctc import run_digits

    for name in ("num_train", "num_test"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    speaker = None if args.held_out_speaker.lower() == "none" else args.held_out_speaker
    return run_digits(args.recordings, args.out, args.seed, args.num_train, args.num_test, speaker)


# -- demo -----------------------------------------------------------------------


def cmd_demo(args) -> int:
    from rnnkit.cli.demo import run_demo

    return run_demo(args.time_limit, args.out)


# -- bench ----------------------------------------------------------------------


def _choices(flag: str, text: str, allowed) -> tuple[str, ...]:
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in items if t not in allowed]
    if not items or bad:
        raise ConfigError(f"--{flag}: expected a comma-separated subset of {', '.join(allowed)}, got {text!r}")
    return items


def cmd_bench(args) -> int:
    from rnnkit.cli import bench
    from rnnkit.training.device import bf16_supported

    try:
        hidden_sizes = tuple(int(t) for t in args.hidden_sizes.split(","))
    except ValueError:
        raise ConfigError(f"--hidden-sizes: expected comma-separated integers, got {args.hidden_sizes!r}") from None
    positive = {"hidden-sizes": min(hidden_sizes), "num-layers": args.num_layers, "batch-size": args.batch_size,
                "seq-len": args.seq_len, "vocab-size": args.vocab_size, "embedding-dim": args.embedding_dim,
                "rounds": args.rounds}
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(f"--{name}: must be >= 1, got {value}")
    has_bf16 = bf16_supported(torch.device("cpu"))
    if args.precisions == "auto":
        precisions = ("fp32", "bf16") if has_bf16 else ("fp32",)
    else:
        precisions = _choices("precisions", args.precisions, ("fp32", "bf16"))
        if "bf16" in precisions and not has_bf16:
            raise ConfigError("--precisions bf16: this CPU has no bf16 matrix units; use --precisions fp32")
    cfg = bench.BenchConfig(cells=_choices("cells", args.cells, tuple(bench.TORCH_LAYERS)), hidden_sizes=hidden_sizes,
                            engines=_choices("engines", args.engines, ("fused", "explicit")),
                            precisions=precisions, num_layers=args.num_layers,
                            embedding_dim=args.embedding_dim, vocab_size=args.vocab_size,
                            batch_size=args.batch_size, seq_len=args.seq_len, seconds=args.seconds,
                            generate_chars=args.generate_chars, rounds=args.rounds, memory=not args.no_memory)
    result = bench.run(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(bench.format_report(result))
    if args.json:
        bench.save_json(result, args.json)
    return 0
