"""``rnnkit train`` and ``rnnkit lr-find``: settings from flags and a
``--config`` file, refused where they would do nothing, the task's data and
model, then the Trainer (or the learning-rate range test)."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import torch

from rnnkit.cli.options import Choice, flag, refuse_changes, refuse_unused, split_settings, train_settings
from rnnkit.config import TrainConfig, from_dict, to_dict
from rnnkit.deprecated import rmsprop_momentum
from rnnkit.errors import ConfigError, DataError, TrainingError
from rnnkit.kernels import choose_engine
from rnnkit.models.encoder import layers_in_words
from rnnkit.tasks import Trainer, named, read_run
from rnnkit.tasks.lm import bits_name

EXIT_INTERRUPTED = 130


def _lr_find(model, data, task, train_cfg: TrainConfig, start: float, end: float, steps: int) -> int:
    from rnnkit.training.lr_find import range_test, range_test_figure
    from rnnkit.training.plots import png
    from rnnkit.training.runs import default_folder, write_output

    out = Path(train_cfg.out) if train_cfg.out else default_folder(data.config.path)
    print(f"rnnkit lr-find: {data.config.path}, {train_cfg.optimizer}, the rate from {start:g} to {end:g} over "
          f"{steps} steps; the weights are left behind, the curve goes to {out}", flush=True)
    test = range_test(model, data, train_cfg, start, end, steps, task=task)
    if not test.losses:
        raise TrainingError(f"the loss was not finite from the first step at rate {start:g}; lower --start-lr")
    write_output(out / "lr_find.png", png(range_test_figure(test, f"{data.config.path}, {train_cfg.optimizer}")))
    write_output(out / "lr_find.json", json.dumps(test.to_dict()).encode())
    low = test.lowest
    print(f"{len(test.losses)} steps ({test.stopped}); the lowest smoothed loss {test.smoothed[low]:.3f} at rate "
          f"{test.lrs[low]:.2g}: suggested --lr {test.suggestion:.2g}; the curve: {out / 'lr_find.png'}")
    return 0


def run_train(args, say, device: str | None = None, lr_find: tuple | None = None, callbacks=()) -> int:
    """``rnnkit train``; ``say`` prints (rank 0's) news, and ``device`` is torchrun's for this process;
    with ``lr_find`` (start, end, steps), ``rnnkit lr-find``: the range test instead of training;
    ``callbacks``: the Trainer's (``rnnkit tune``'s pruning)."""
    from rnnkit.training import resolve_device
    from rnnkit.training.footprint import refuse_oversized
    from rnnkit.training.lr_find import FIXED

    given = train_settings(args)
    for name in sorted(set(given) & set(FIXED) if lr_find else ()):
        raise ConfigError(f"{flag(name)} does nothing in a learning-rate range test, which sets the rate and the "
                          f"steps itself and saves no weights; drop it")
    if device is not None:
        given["device"] = device.split(":")[0]  # cuda:LOCAL_RANK is the current device
    if args.resume:
        out = given.get("out")
        if not out:
            raise ConfigError("--resume needs --out RUN, the run folder to continue")
        doc = read_run(out)
        task = named(doc.task)
        given = rmsprop_momentum(given, doc.train.optimizer)  # a resumed rmsprop run's --momentum: its --alpha
        model_s, data_s, train_s = split_settings(given, task)
        model_cfg, data_cfg = doc.model, doc.data
        refuse_changes(model_s, model_cfg, out)
        refuse_changes(data_s, data_cfg, out)
        if args.path and Path(args.path).resolve() != Path(data_cfg.path).resolve():
            raise ConfigError(f"--resume continues the run on {data_cfg.path}; do not give another PATH")
        train_cfg = from_dict(task.train_config, {**to_dict(doc.train), **train_s}, "train settings")
        if train_cfg.best_by != doc.train.best_by:  # its best checkpoint's score would not compare
            raise ConfigError(f"--best-by {train_cfg.best_by}: {out} keeps its best checkpoint by {doc.train.best_by};"
                              f" resume with the same --best-by, or start another run")
    else:
        if not args.path:
            raise ConfigError("train: give a text file to train on (or --resume --out RUN)")
        task = named(given.get("task", "lm"))
        model_s, data_s, train_s = split_settings(given, task)  # what the task's configs have
        model_cfg = from_dict(task.model_config, model_s, "model settings")
        data_cfg = from_dict(task.data_config, {**data_s, "path": args.path, "task": task.name}, "data settings")
        train_cfg = from_dict(task.train_config, train_s, "train settings")
    if device is not None and getattr(train_cfg, "unfreeze_every", None):  # DDP reduces a fixed set of gradients
        raise ConfigError("--unfreeze-every changes which weights get gradients as training goes, which torchrun's "
                          "data parallelism cannot follow; train in one process")
    pretrained = None  # --init-from: a language model to start from (rnnkit.tasks.transfer), not when resuming
    if getattr(train_cfg, "init_from", None) and not args.resume:
        from rnnkit.tasks.transfer import Pretrained

        refuse_unused({"init_from"}, Choice(model_cfg, data_cfg, train_cfg))  # before the run is read
        pretrained = Pretrained.read(train_cfg.init_from)
        model_cfg, data_cfg = pretrained.settle(model_cfg, data_cfg)
    data_cfg, decided = task.decide(data_cfg)  # `auto` settings, from what the data looks like
    choice = Choice(model_cfg, data_cfg, train_cfg)
    if lr_find is not None and choice.closed_form:
        raise ConfigError("lr-find sweeps the learning rate of gradient steps, and an esn's readout is fitted in "
                          "closed form (no learning rate): train it with `rnnkit train`")
    if choice.recurrent:
        choose_engine(model_cfg.engine, model_cfg.cell, "cpu")  # a known cell, and an engine it has
    refuse_unused(given, choice)  # before any work; a setting the task's configs lack, too
    task.check(model_cfg, data_cfg)
    if pretrained:  # the language model's vocabulary and the words this data adds
        data = pretrained.read_data(task, data_cfg, spell=task.spelling(model_cfg))
    else:
        data = task.read_data(data_cfg, doc if args.resume else None, spell=task.spelling(model_cfg))
    data_cfg = data.config  # with what the task decided from the data (a sample rate, an auto tokenizer)
    model_cfg, more = task.decide_model(model_cfg, data)  # a forecast's --ar-order auto
    decided = [*decided, *more]
    if args.resume and data.digest != doc.corpus_sha256:
        raise DataError(f"{data_cfg.path} changed since the run started; resume needs the same corpus")
    build = functools.partial(task.build_model, model_cfg, data.tokenizer, getattr(data, "labels", None),
                              getattr(data, "target_tokenizer", None))
    with torch.device("meta"):  # the model's size, before memory is spent on it
        refuse_oversized(build(), train_cfg.optimizer, resolve_device(train_cfg.device))
    torch.manual_seed(train_cfg.seed)
    model = build()
    if model_cfg.embeddings and not args.resume:
        say(_start_embedding(model, data.tokenizer, model_cfg.embeddings), flush=True)
    if pretrained:
        decided.append(pretrained.copy_into(model, data))
    if lr_find is not None:
        return _lr_find(model, data, task, train_cfg, *lr_find)
    trainer = Trainer(model, data, train_cfg, callbacks=callbacks, task=task)
    if not args.resume and trainer.holds_run():
        raise ConfigError(f"{trainer.out} already holds a run; pass --resume to continue it "
                          f"or choose another --out")
    n_params = sum(p.numel() for p in model.parameters())
    say(f"rnnkit train --task {task.name}: {data_cfg.path} ({len(data.train):,} train / {len(data.val):,} "
          f"val {task.unit_of(data)}, {', '.join([task.describe(data), *decided])}); "
          f"{layers_in_words(model.config)}, {n_params:,} parameters, "
          f"on {trainer.device} in {'fp32 (sums in fp64)' if choice.closed_form else trainer.precision}, "
          f"{_engines(trainer.engines)}; budget: "
          + ("one pass, the readout in closed form" if choice.closed_form else trainer.budget.describe())
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
                    f"perplexity {result['val_perplexity']:.2f}), best {result['best_val']:.4f}"
                    + ("" if train_cfg.best_by == "auto" else f" ({trainer.criterion.name})"))
    elif "val_loss" in result:
        summary += "; val " + _scores(result, "val_")
    test = trainer.test()
    if test:
        summary += "; test (best checkpoint) " + _scores(test, bits=bits_name(data.tokenizer))
    say(summary + "; " + task.next_step(result["out"]))
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


def _scores(metrics: dict, prefix: str = "", bits: str = "bpc") -> str:
    """``metrics`` (their keys after ``prefix``) as "name value" pairs; ``bits``: the name of "bpc"."""
    names = {"loss": "loss", "bpc": bits, "perplexity": "perplexity", "accuracy": "accuracy", "f1": "F1",
             "token_error_rate": "token error rate", "sequence_error_rate": "sequence error rate", "bleu": "BLEU"}
    return ", ".join(f"{label} {metrics[prefix + key]:.4f}" for key, label in names.items()
                     if prefix + key in metrics)


