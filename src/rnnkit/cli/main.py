"""``rnnkit <command>``: train, lr-find, tune, sample, eval, predict, report,
export, serve, experiment, digits, demo, bench.

Thin: flags are parsed (:mod:`rnnkit.cli.parser`) into the config
dataclasses, and the run's task (:mod:`rnnkit.tasks`) or the library does
the work. Expected errors print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from rnnkit.cli.parser import build_parser, parse_args  # noqa: F401 (build_parser: the tests read the options)
from rnnkit.cli.train import run_train
from rnnkit.config import SampleConfig, from_dict
from rnnkit.errors import ConfigError, RnnkitError
from rnnkit.experiments import EXPERIMENTS, reads_data
from rnnkit.tasks import TASKS, load_run, named

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


def main(argv=None) -> int:
    """The ``rnnkit`` command: run the subcommand ``argv`` names; an expected error is one line on stderr and
    exit code 2, Ctrl-C exit code 130."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else list(argv))
        return {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "demo": cmd_demo,
                "bench": cmd_bench, "predict": cmd_predict, "digits": cmd_digits, "report": cmd_report,
                "export": cmd_export, "serve": cmd_serve, "experiment": cmd_experiment, "lr-find": cmd_lr_find,
                "tune": cmd_tune}[args.command](args)
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
    """``rnnkit train`` (also one of torchrun's processes)."""
    from rnnkit.training import distributed

    if not distributed.launched():
        return run_train(args, print)
    device = distributed.join(getattr(args, "device", "auto"))  # one of torchrun's processes
    code = run_train(args, print if distributed.current().main else lambda *a, **k: None, device)
    # after an error, torchrun stops the other processes; destroying the group then could wait on them. After
    # success, all wait for all first: a gloo process that left while another still talked aborted at exit
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    return code


def cmd_lr_find(args) -> int:
    """``rnnkit lr-find``: the learning-rate range test."""
    from rnnkit.training import distributed

    if distributed.launched():
        raise ConfigError("lr-find runs in one process; start it without torchrun")
    if not (0 < args.start_lr < args.end_lr) or args.steps < 2:
        raise ConfigError(f"lr-find needs 0 < --start-lr < --end-lr and --steps >= 2; got {args.start_lr:g}, "
                          f"{args.end_lr:g} and {args.steps}")
    args.resume = args.dry_run = False
    return run_train(args, print, lr_find=(args.start_lr, args.end_lr, args.steps))


def cmd_tune(args) -> int:
    """``rnnkit tune``: a hyperparameter search with Optuna."""
    from rnnkit.cli.tune import run_tune

    return run_tune(args)


# -- sample, eval, predict, report: the run's task does them --------------------------------------


def cmd_sample(args) -> int:
    """``rnnkit sample``: generate text from a language model's run."""
    from rnnkit.training import resolve_device, resolve_precision

    given = {k: v for k, v in vars(args).items() if k in SampleConfig.__dataclass_fields__}
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
    return named(doc.data.task).sample(args.run, model, tokenizer, doc, cfg, precision)


def _refuse_other_tasks_options(args, task, command: str) -> None:
    """An error for an option of `eval` or `predict` that only other tasks' runs take."""
    taken = {name for t in TASKS.values() for name in getattr(t, command + "_options")}
    for name in sorted(taken - getattr(task, command + "_options")):
        if getattr(args, name, None) is not None:
            readers = [t.name for t in TASKS.values() if name in getattr(t, command + "_options")]
            raise ConfigError(f"--{name.replace('_', '-')} needs a {' or '.join(readers)} run; {args.run} is a "
                              f"{task.name} run, so here it would do nothing; drop it")


def cmd_eval(args) -> int:
    """``rnnkit eval``: score a run on a split or a file, as its task scores."""
    from rnnkit.training import resolve_device

    if args.path and args.split:
        raise ConfigError("--split picks a split of the run's corpus; with PATH the whole file is scored: "
                          "drop --split or PATH")
    model, _, doc = load_run(args.run, resolve_device(args.device), engine=args.engine)
    task = named(doc.data.task)
    _refuse_other_tasks_options(args, task, "eval")
    return task.evaluate(args.run, model, doc, args)


def cmd_predict(args) -> int:
    """``rnnkit predict``: a run's outputs for new inputs, as its task writes them."""
    from rnnkit.training import resolve_device

    model, _, doc = load_run(args.run, resolve_device(args.device), engine=args.engine)
    task = named(doc.data.task)
    _refuse_other_tasks_options(args, task, "predict")
    return task.predict(args.run, model, doc, args)


def cmd_report(args) -> int:
    """``rnnkit report``: a run's self-contained HTML report."""
    from rnnkit.training import resolve_device
    from rnnkit.training.report import write_report

    device = resolve_device(args.device)
    model, _, doc = load_run(args.run, device)
    return write_report(args.run, args.out, named(doc.data.task), model, doc, args.text, args.text_length, device)


def cmd_export(args) -> int:
    """``rnnkit export``: a run's ONNX graphs and export.json."""
    from rnnkit.tasks import export_run

    folder, names = export_run(args.run, args.out)
    print(f"wrote {', '.join(name + '.onnx' for name in names)} and export.json to {folder}")
    return 0


def cmd_serve(args) -> int:
    """``rnnkit serve``: a run's local HTTP server."""
    from rnnkit.cli.serve import run_serve

    return run_serve(args)


# -- experiment -----------------------------------------------------------------


def cmd_experiment(args) -> int:
    """``rnnkit experiment``: one of the lecture experiments, its table and figures."""
    from rnnkit.training.plots import png
    from rnnkit.training.runs import write_output

    if args.data and not reads_data(args.name):
        readers = " and ".join(name for name in EXPERIMENTS if reads_data(name))
        raise ConfigError(f"--data is read by the {readers} experiment only; {args.name} makes its own data")
    data = {"data": args.data} if reads_data(args.name) else {}
    table, figure = EXPERIMENTS[args.name].run(quick=args.quick, **data)
    target = Path(args.out) / f"{args.name}.png"
    write_output(target, png(figure))
    print(table.markdown() + f"\n\nplot: {target}")
    return 0


# -- digits ---------------------------------------------------------------------


def cmd_digits(args) -> int:
    """``rnnkit digits``: spoken digit strings for ``--task ctc``."""
    from rnnkit.cli.digits import cmd_digits as run

    return run(args)


# -- demo -----------------------------------------------------------------------


def cmd_demo(args) -> int:
    """``rnnkit demo``: a character model trained on Python source, sampled as it learns."""
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
    """``rnnkit bench``: time rnnkit's engines against torch's layers."""
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
                            sample_length=args.sample_length, rounds=args.rounds, memory=not args.no_memory)
    result = bench.run(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(bench.format_report(result))
    if args.out:
        bench.save_json(result, args.out)
    return 0
