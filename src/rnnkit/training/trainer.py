"""One training loop: truncated BPTT over carried state, schedules, clipping,
evaluation, checkpoints that resume exactly, and Ctrl-C that saves.

The loop knows nothing task-specific: the model gives ``loss(batch, state)
-> (loss, state)``; a state it returns (a language model's) is detached and
passed back with the next batch of the same epoch (the batches continue each
other), and reset to zero at each new epoch; classifiers and taggers return
None. Validation is :func:`rnnkit.training.evaluate.validate`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import signal
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from rnnkit.config import TrainConfig
from rnnkit.diagnostics import diagnostic_batch, has_cells
from rnnkit.diagnostics import measure as measure_diagnostics
from rnnkit.errors import CheckpointError, ConfigError, TrainingError
from rnnkit.kernels.memory import keep_freed_memory
from rnnkit.layers import engines_in
from rnnkit.training import distributed
from rnnkit.training.board import Board
from rnnkit.training.device import resolve_device, resolve_precision
from rnnkit.training.evaluate import criterion, validate
from rnnkit.training.footprint import Footprint, size
from rnnkit.training.footprint import measure as measure_footprint
from rnnkit.training.optim import (
    add_l1_subgradient,
    all_finite,
    build_optimizer,
    clip_gradients,
    learning_rate,
    teacher_forcing,
)
from rnnkit.training.plots import plot_losses
from rnnkit.training.runs import (
    BEST,
    CONFIG,
    LAST,
    METRICS,
    PLOT,
    atomic_write_bytes,
    check_tensors,
    default_folder,
    load_tensors,
    read_config,
    read_metrics,
    remove_partial_writes,
    run_lock,
    save_tensors,
    write_config,
)

DEFAULT_TIME_LIMIT = 300.0
MAX_NONFINITE_IN_A_ROW = 20  # skip and lower_lr give up after this many non-finite steps in a row


class Trainer:
    """Train ``model`` on ``data`` as ``config`` says, writing the run folder ``out``.

    ``fit()`` trains until the budget (``max_steps``, ``max_epochs``,
    ``time_limit``; 5 minutes when none is set) is spent, early stopping
    fires, or Ctrl-C; it returns a summary dict. ``callbacks`` are called as
    ``f(trainer)`` after every step; ``request_stop()`` ends training after
    the current step, as Ctrl-C does.
    """

    def __init__(self, model, data, config: TrainConfig, out: str | Path | None = None,
                 callbacks=(), quiet: bool = False):
        self.out = Path(out or config.out or default_folder(data.config.path))
        self.cfg = config = dataclasses.replace(config, out=str(self.out))
        self.data = data
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.callbacks = list(callbacks)
        # data parallel (rnnkit.training.distributed): this process's place, and the model behind DDP
        self.group = distributed.current()
        self.writes = self.group is None or self.group.main  # only rank 0 writes the run folder and prints
        self.quiet = quiet or not self.writes
        if self.group and data.config.batch_size % self.group.world:
            raise ConfigError(f"--batch-size {data.config.batch_size} does not split over {self.group.world} "
                              f"processes; give a multiple of {self.group.world} (it is the global batch)")
        self.ddp = distributed.wrap(self.model, self.device) if self.group else None  # calls model.loss
        self.batcher = data.batcher(config.seed)
        self.optimizer = build_optimizer(self.model, config)
        self.budget = {"max_steps": config.max_steps, "max_epochs": config.max_epochs,
                       "time_limit": config.time_limit}
        if not config.has_budget:
            self.budget["time_limit"] = DEFAULT_TIME_LIMIT
        # position and bookkeeping, all saved in last.safetensors
        self.step, self.epoch, self.batch_index = 0, 0, 0
        self.elapsed = 0.0
        self.best_val = math.inf
        self.evals_without_improvement = 0
        self.log_sum, self.log_norm_sum, self.log_count = 0.0, 0.0, 0
        self.skipped_steps, self.nonfinite_in_a_row = 0, 0  # steps whose loss or gradient was not finite
        self.lr_scale = 1.0  # halved at each such step under --on-nonfinite lower_lr
        self.saved_step: int | None = None  # the step of the last checkpoint written
        self.config_digest: str | None = None  # what the weights mean (runs.structure_digest), in each checkpoint
        self.carry = None  # recurrent state carried to the next batch
        self.rows: list[dict] = []
        self.board: Board | None = None  # TensorBoard's event files, with --log tensorboard
        self._fixed_batch: tuple | None = None  # what --diagnostics measures on
        self._stop = False
        if config.diagnostics and not has_cells(self.model):
            raise ConfigError("--diagnostics inspects recurrent cells, and this model has none (a tdnn encoder); "
                              "drop --diagnostics")
        # the engine of every recurrent layer (rnnkit.kernels.choose_engine), recorded in config.json
        # so that evaluating the run later takes the same one
        self.engines = engines_in(self.model, self.device)
        keep_freed_memory()  # a step reuses its activations' pages instead of faulting them in again

    # -- public ---------------------------------------------------------------

    def holds_run(self) -> bool:
        """Whether ``out`` already has checkpoints (that a fresh run would overwrite)."""
        return (self.out / LAST).exists() or (self.out / BEST).exists()

    def request_stop(self) -> None:
        self._stop = True

    def footprint(self) -> Footprint:
        """The memory this run needs (:mod:`rnnkit.training.footprint`)."""
        local_batch = self.data.config.batch_size // (self.group.world if self.group else 1)
        return measure_footprint(self.model, self.batcher, local_batch, self.cfg.optimizer, self.device,
                                 self.precision)

    def check_memory(self, footprint: Footprint | None = None) -> None:
        """A TrainingError, before anything starts, when the run cannot fit in memory."""
        footprint = footprint or self.footprint()
        if not footprint.fits:
            raise TrainingError(f"this run needs about {size(footprint.step)} beyond the {size(footprint.resident)} "
                                f"the process holds, and {size(footprint.available)} are available; lower "
                                f"--batch-size (or --seq-len, --hidden-size)")

    def fit(self, resume: bool = False) -> dict:
        self.check_memory()
        if not self.writes:
            return self._fit(resume)
        self.out.mkdir(parents=True, exist_ok=True)
        with run_lock(self.out):  # a second trainer on this folder is refused
            remove_partial_writes(self.out)  # of a writer killed mid-write
            return self._fit(resume)

    def _fit(self, resume: bool) -> dict:
        if resume:
            self._restore()
        else:
            if self.holds_run() and self.writes:
                raise CheckpointError(f"{self.out} already holds a run; pass --resume to continue it "
                                      f"or choose another --out")
            torch.manual_seed(self.cfg.seed + (self.group.rank if self.group else 0))  # dropout differs by rank
            if self.writes:
                (self.out / METRICS).unlink(missing_ok=True)
        extra = {"labels": self.data.labels} if hasattr(self.data, "labels") else {}
        if hasattr(self.data, "target_tokenizer"):  # sequence to sequence
            extra["target_tokenizer"] = self.data.target_tokenizer.to_dict()
        if self.writes:
            with self._writing():
                self.config_digest = write_config(self.out, self.model.config, self.data.config, self.cfg,
                                                  self.data.tokenizer, corpus_sha256=self.data.digest,
                                                  engines=self.engines, **extra)
        if self.writes and self.cfg.log == "tensorboard":
            self.board = Board(self.out)
        previous = self._install_sigint()
        bar = tqdm(total=100, disable=self.quiet or not sys.stderr.isatty(), leave=False,
                   bar_format="{percentage:3.0f}%|{bar:20}| {elapsed}<{remaining} {postfix}")
        try:
            try:
                reason = self._loop(bar)
            finally:
                bar.close()
                if previous is not None:
                    signal.signal(signal.SIGINT, previous)
            result = self._evaluate_and_save() if reason != "interrupted" else self._save_last()
        finally:
            if self.board is not None:
                self.board.close()
        return {"stopped": reason, "step": self.step, "epoch": self.epoch, "elapsed": self.elapsed,
                "best_val": self.best_val, "skipped_steps": self.skipped_steps, "out": str(self.out),
                **(result or {})}

    # -- the loop -------------------------------------------------------------

    def _progress(self) -> float:
        b, nb = self.budget, self.batcher.num_batches(self.epoch)
        parts = [0.0]
        if b["max_steps"]:
            parts.append(self.step / b["max_steps"])
        if b["max_epochs"]:
            parts.append((self.epoch + self.batch_index / nb) / b["max_epochs"])
        if b["time_limit"]:
            parts.append(self.elapsed / b["time_limit"])
        return max(parts)

    def _loop(self, bar) -> str:
        model, opt, cfg = self.model, self.optimizer, self.cfg
        model.train()
        started = time.perf_counter() - self.elapsed
        tick, tick_tokens = time.perf_counter(), 0
        while True:
            for batch in self.batcher.batches(self.epoch, self.batch_index):
                lr = learning_rate(cfg, self.step, self._progress()) * self.lr_scale
                for group in opt.param_groups:
                    group["lr"] = lr
                sampling = cfg.scheduled_sampling != "none"
                if sampling:  # a seq2seq decoder's chance of reading the target's token
                    model.teacher_forcing = teacher_forcing(cfg, self.step)
                batch, has_rows = tuple(t.to(self.device) for t in batch), True
                if self.group:  # this rank's rows
                    batch, has_rows = distributed.rows(batch, self.group)
                with torch.autocast(self.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
                    loss, state = (self.ddp or model.loss)(batch, self.carry)
                value, share = loss.item(), 1.0
                if self.group:  # the global batch's mean loss (NaN if any rank's is), and this rank's share
                    terms = distributed.loss_terms(model, batch) if has_rows else 0
                    total, all_terms = distributed.all_sum(value * terms, terms)
                    value, share = total / all_terms, terms * self.group.world / all_terms
                opt.zero_grad(set_to_none=True)
                norm = math.nan
                if math.isfinite(value):
                    (loss * share if share != 1.0 else loss).backward()
                    norm = clip_gradients(model, cfg.clip_value, cfg.clip_norm)
                if math.isfinite(value) and math.isfinite(norm):
                    if cfg.l1:
                        add_l1_subgradient(model, cfg.l1)
                    opt.step()
                    self.nonfinite_in_a_row = 0
                    self.log_sum += value
                    self.log_norm_sum += norm
                    self.log_count += 1
                    if state is not None:
                        self.carry = tuple(s.detach() for s in state)  # truncate BPTT here
                else:  # no update; the next batch starts from a zero state
                    self._skip(*(("loss", value) if not math.isfinite(value) else ("gradient norm", norm)))
                    self.carry = None
                self.step += 1
                self.batch_index += 1
                self.elapsed = time.perf_counter() - started
                if self.group:  # one clock and one stop decision for all ranks: the slowest rank's time
                    self.elapsed, stop = distributed.all_max(self.elapsed, float(self._stop))
                    self._stop = bool(stop)
                tick_tokens += batch[0].shape[0] * batch[0].shape[1]  # (B, T), or (B, T, F) of vectors
                if self.step % cfg.log_every == 0 and self.log_count:
                    now = time.perf_counter()
                    speed = tick_tokens / max(now - tick, 1e-9)
                    tick, tick_tokens = now, 0
                    self._log({"step": self.step, "epoch": round(self.epoch + self.batch_index /
                                                                  self.batcher.num_batches(self.epoch), 4),
                               "loss": self.log_sum / self.log_count, "lr": lr,
                               "grad_norm": round(self.log_norm_sum / self.log_count, 4),
                               **({"teacher_forcing": round(model.teacher_forcing, 4)} if sampling else {}),
                               "tokens_per_s": round(speed, 1), "elapsed": round(self.elapsed, 2)})
                    self.log_sum, self.log_norm_sum, self.log_count = 0.0, 0.0, 0
                    bar.set_postfix_str(f"loss {self.rows[-1]['loss']:.3f} "
                                        f"({self.rows[-1]['loss'] / math.log(2):.3f} bpc) "
                                        f"{speed:,.0f} tok/s", refresh=False)
                bar.n = round(100 * min(self._progress(), 1.0), 1)
                bar.refresh()
                for callback in self.callbacks:
                    callback(self)
                if cfg.diagnostics and self.step % cfg.diagnostics == 0 and self.writes:
                    self._log({"step": self.step, "diagnostics": measure_diagnostics(model, self._diagnostic_batch())})
                    started = time.perf_counter() - self.elapsed  # measuring is not budget, as evaluating
                if self._progress() >= 1.0:
                    return "budget"
                if self._stop:
                    return "interrupted"
                if cfg.save_every and self.step % cfg.save_every == 0 and self.step % cfg.eval_every:
                    self._save_last()
                if self.step % cfg.eval_every == 0:
                    self._evaluate_and_save(bar)
                    started = time.perf_counter() - self.elapsed  # evaluation time is not budget
                    tick = time.perf_counter()
                    if cfg.patience and self.evals_without_improvement >= cfg.patience:
                        return "early stopping"
            self.epoch += 1
            self.batch_index = 0
            self.carry = None

    def _log(self, row: dict) -> None:
        self.rows.append(row)
        if not self.writes:
            return
        with self._writing():
            with open(self.out / METRICS, "a") as f:
                f.write(json.dumps(row) + "\n")
            if self.board is not None:
                self.board.log(row)

    def _diagnostic_batch(self) -> tuple:
        if self._fixed_batch is None:
            self._fixed_batch = tuple(t.to(self.device) for t in diagnostic_batch(self.data))
        return self._fixed_batch

    def _skip(self, what: str, value: float) -> None:
        """Deal with step ``self.step + 1``, whose ``what`` (loss or gradient norm)
        is ``value``, not finite, as ``--on-nonfinite`` says: stop, or count it, warn, and
        (lower_lr) halve the learning rate. Weights that are not finite themselves
        end training whatever the policy: no skipping brings them back."""
        step, policy, problem = self.step + 1, self.cfg.on_nonfinite, f"{what} {value}"
        self.skipped_steps += 1
        self.nonfinite_in_a_row += 1
        where = (f"the last checkpoint (step {self.saved_step}) is in {self.out}" if self.saved_step is not None
                 else "nothing was saved yet")
        if not all_finite(self.model.parameters()):
            raise TrainingError(f"the weights are no longer finite at step {step} ({problem}); {where}: "
                                f"resume from it with a lower --lr")
        if policy == "stop":
            raise TrainingError(f"the {what} became {value} at step {step}; lower --lr, set "
                                f"--clip-norm, or pass --on-nonfinite skip; {where}")
        if self.nonfinite_in_a_row >= MAX_NONFINITE_IN_A_ROW:
            raise TrainingError(f"{self.nonfinite_in_a_row} steps in a row up to step {step} had a non-finite loss "
                                f"or gradient; lower --lr; {where}")
        if policy == "lower_lr":
            self.lr_scale /= 2
        self._log({"step": step, "nonfinite": problem, "skipped_steps": self.skipped_steps, "lr_scale": self.lr_scale})
        if not self.quiet:
            tqdm.write(f"step {step}: {problem}, step skipped ({self.skipped_steps} so far)"
                       + (f"; learning rate now x{self.lr_scale:g}" if policy == "lower_lr" else ""), file=sys.stderr)

    @contextlib.contextmanager
    def _writing(self):
        """A write into the run folder; one that fails (a full disk) ends training with a
        message that says what is still there: every file is replaced atomically, so
        the previous checkpoint is whole."""
        try:
            yield
        except OSError as e:
            kept = (f"the last checkpoint (step {self.saved_step}) is intact" if self.saved_step is not None
                    else "no checkpoint was written yet")
            raise TrainingError(f"could not write to {self.out}: {e.strerror or e}; {kept}: free space, then "
                                f"continue with: rnnkit train --resume --out {self.out}") from None

    # -- evaluation and checkpoints -------------------------------------------

    def _evaluate_and_save(self, bar=None) -> dict:
        metrics = validate(self.model, self.data, "val", self.cfg.eval_streams, self.group)
        result = {"val_" + k: v for k, v in metrics.items()}
        if result:
            self._log({"step": self.step, **result})
            improved = criterion(metrics) < self.best_val
        else:  # no validation split: the last weights are the best we know
            improved = True
        self._refuse_nonfinite_weights()
        if improved:
            self.best_val = criterion(metrics) if metrics else math.inf
            self.evals_without_improvement = 0
            if self.writes:
                with self._writing():
                    save_tensors(self.out / BEST, self.model.state_dict(),
                                 {"step": self.step, "config_sha256": self.config_digest, **result})
        else:
            self.evals_without_improvement += 1
        self._save_last()
        if self.writes:
            with self._writing():
                plot_losses(self.rows, self.out / PLOT, title=str(self.out))
        sample = None
        if self.writes and self.cfg.sample_length and hasattr(self.model, "generate"):
            sample = self._sample()
            self._log({"step": self.step, "sample": sample})
        self._report(result, bar, sample)
        return result

    def _report(self, result: dict, bar, sample: str | None) -> None:
        if self.quiet:
            return
        line = f"step {self.step:,} | epoch {self.epoch + 1} | {self.elapsed:.0f}s"
        if "val_bpc" in result:
            line += (f" | val {result['val_loss']:.4f} nats ({result['val_bpc']:.3f} bpc, "
                     f"perplexity {result['val_perplexity']:.2f})")
        elif result:
            line += " | val " + " | ".join(f"{k.removeprefix('val_').replace('_', ' ')} {v:.4f}"
                                           for k, v in result.items())
        write = bar.write if bar is not None else print
        write(line)
        if sample is not None:
            write(sample + "\n" + "-" * 40)

    def _sample(self) -> str:
        tok = self.data.tokenizer
        prime = tok.encode(tok.default_prime())
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + self.step)
        labels = getattr(self.data, "labels", None)  # a conditioned model: one text per label
        if not labels:
            return tok.decode(list(self.model.generate(prime, self.cfg.sample_length, temperature=0.8,
                                                       generator=gen)))
        end = int(tok.encode("\n")[-1])
        texts = []
        for k, label in enumerate(labels[:4]):
            tokens = self.model.generate(prime, self.cfg.sample_length, temperature=0.8, generator=gen, condition=k)
            ids = list(itertools.takewhile(lambda t: t != end, tokens))  # a text ends at its newline
            texts.append(f"[{label}] {tok.decode(ids)}")
        return "\n".join(texts)

    def test(self) -> dict:
        """The best checkpoint's metrics on the test split ({} without one)."""
        if self.group:  # rank 0's last writes land before any rank reads them
            distributed.barrier()
        if not (self.out / BEST).exists():
            return {}
        tensors, _ = load_tensors(self.out / BEST)
        current = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(tensors)
        try:  # a text read as one stream; the ranks share the batches of other tasks
            return validate(self.model, self.data, "test", streams=1, group=self.group)
        finally:
            self.model.load_state_dict(current)

    def _refuse_nonfinite_weights(self) -> None:
        if not all_finite(self.model.parameters()):
            kept = f"step {self.saved_step}" if self.saved_step is not None else "none yet"
            raise TrainingError(f"the weights are not finite at step {self.step}, so they were not saved (the last "
                                f"checkpoint in {self.out}: {kept}); resume from it with a lower --lr")

    def _save_last(self) -> None:
        self._refuse_nonfinite_weights()
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_state = self.optimizer.state_dict()
        scalars = {}
        for pid, entries in opt_state["state"].items():
            for key, value in entries.items():
                if torch.is_tensor(value):
                    tensors[f"optim.{pid}.{key}"] = value
                else:
                    scalars[f"{pid}.{key}"] = value
        carry, rngs = self.carry or (), [torch.get_rng_state()]
        if self.group:  # the global state: every rank's streams (state (L*D, B, H)), every rank's random state
            carry = tuple(distributed.gather_rows(s, dim=1) for s in carry)
            rngs = distributed.gather_objects(rngs[0])
        for i, s in enumerate(carry):
            tensors[f"carry.{i}"] = s
        for rank, rng in enumerate(rngs):
            tensors["rng.cpu" if rank == 0 else f"rng.cpu.{rank}"] = rng
        if self.device.type == "cuda" and not self.group:
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {"step": self.step, "epoch": self.epoch, "batch_index": self.batch_index,
                "elapsed": self.elapsed, "best_val": self.best_val if math.isfinite(self.best_val) else None,
                "evals_without_improvement": self.evals_without_improvement,
                "log_sum": self.log_sum, "log_norm_sum": self.log_norm_sum, "log_count": self.log_count,
                "skipped_steps": self.skipped_steps, "nonfinite_in_a_row": self.nonfinite_in_a_row,
                "lr_scale": self.lr_scale, "param_groups": opt_state["param_groups"], "optim_scalars": scalars,
                "optimizer": self.cfg.optimizer, "config_sha256": self.config_digest}
        if self.writes:
            with self._writing():
                save_tensors(self.out / LAST, tensors, meta)
        self.saved_step = self.step

    def _restore(self) -> None:
        """Take up the run in ``out`` from last.safetensors, every part of it checked
        against this trainer's model, optimizer and data before any is used."""
        path = self.out / LAST
        tensors, meta = load_tensors(path)
        if (self.out / CONFIG).exists():
            read_config(self.out)  # refuses a config.json edited after the checkpoints were written
        params = [p for group in self.optimizer.param_groups for p in group["params"]]  # optimizer state's ids
        model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        check_tensors(path, model_sd, self.model.state_dict(), "this model's settings (resume without changing "
                                                               "model flags)")
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, pid, key = k.split(".", 2)
                p = params[int(pid)] if pid.isdigit() and int(pid) < len(params) else None
                if p is None or not v.is_floating_point() or (v.dim() and (v.shape, v.dtype) != (p.shape, p.dtype)):
                    raise CheckpointError(f"{path} holds an optimizer state {k} {v.dtype} {tuple(v.shape)} that fits "
                                          f"no parameter of this model; restore the run folder or train again")
                state.setdefault(int(pid), {})[key] = v.to(self.device)
        carry_keys = sorted((k for k in tensors if k.startswith("carry.")), key=lambda k: int(k[6:]))
        carry = {k: tensors[k] for k in carry_keys}
        if carry and hasattr(self.model, "init_state"):  # a language model's state, fp32 or bf16 (autocast)
            zero = self.model.init_state(self.data.config.batch_size)
            if [s.shape for s in carry.values()] != [s.shape for s in zero] or not all_finite(carry.values()) or \
                    not all(s.is_floating_point() for s in carry.values()):
                raise CheckpointError(f"{path} holds a recurrent state that does not fit this model and batch size; "
                                      f"restore the run folder or train again")
        rngs = [v for k, v in tensors.items() if k == "rng.cpu" or k.startswith("rng.cpu.")]
        if not rngs or any((r.shape, r.dtype) != (torch.get_rng_state().shape, torch.uint8) for r in rngs):
            raise CheckpointError(f"{path} has no valid random state (rng.cpu); restore the run folder or train again")
        rank = self.group.rank if self.group else 0
        rng = tensors.get("rng.cpu" if rank == 0 else f"rng.cpu.{rank}")  # None: resumed on more ranks
        if meta.get("optimizer", self.cfg.optimizer) != self.cfg.optimizer:
            raise CheckpointError(f"{self.out} trained with --optimizer {meta['optimizer']}, whose state does not "
                                  f"carry over to {self.cfg.optimizer}; resume with --optimizer {meta['optimizer']}")
        try:
            self._restore_meta(meta, state)
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path} has an altered trainer state ({e}); restore the run folder or train "
                                  f"again") from None
        self.model.load_state_dict(model_sd)
        self.carry = tuple(carry[k].to(self.device) for k in carry_keys) or None
        if self.carry and self.group:  # this rank's streams
            self.carry = tuple(distributed.own_rows(s, 1, self.group) for s in self.carry)
        if rng is not None:
            torch.set_rng_state(rng)
        else:
            torch.manual_seed(self.cfg.seed + rank + self.step)
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)

    def _restore_meta(self, meta: dict, state: dict[int, dict]) -> None:
        """The trainer's counters and the optimizer from ``meta``, type-checked; a ValueError
        or TypeError for anything that is not what :meth:`_save_last` writes."""
        def number(key, kind=float, default=None):
            value = meta.get(key, default) if default is not None else meta[key]
            if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
                raise TypeError(f"{key} is {value!r}")
            if kind is int and value < 0 or kind is float and not math.isfinite(value):
                raise ValueError(f"{key} is {value!r}")
            return value

        # the state of the same parameters; the hyperparameters are this run's settings (a resumed run may
        # change --weight-decay, say), not the checkpoint's
        groups = self.optimizer.state_dict()["param_groups"]
        saved = meta["param_groups"]
        if not isinstance(saved, list) or [g.get("params") if isinstance(g, dict) else None
                                           for g in saved] != [g["params"] for g in groups]:
            raise ValueError("its parameter groups do not fit this model")
        scalars = meta["optim_scalars"]
        if not isinstance(scalars, dict):
            raise TypeError("optim_scalars")
        for k in scalars:
            pid, key = k.split(".", 1)
            state.setdefault(int(pid), {})[key] = number(k)  # never nested objects
        self.step, self.epoch, self.batch_index = number("step", int), number("epoch", int), number("batch_index", int)
        self.elapsed = number("elapsed")
        best = meta["best_val"]
        self.best_val = math.inf if best is None else number("best_val")
        self.evals_without_improvement = number("evals_without_improvement", int)
        self.log_sum, self.log_count = number("log_sum"), number("log_count", int)
        # checkpoints before 2026-12-05 lack these
        self.log_norm_sum = number("log_norm_sum", default=0.0)
        self.skipped_steps = number("skipped_steps", int, default=0)
        self.nonfinite_in_a_row = number("nonfinite_in_a_row", int, default=0)
        self.lr_scale = number("lr_scale", default=1.0)
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        self.saved_step = self.step
        # keep the metrics up to the checkpoint; lines written after it are redone
        path = self.out / METRICS
        if path.exists():
            self.rows = [r for r in read_metrics(self.out) if r["step"] <= self.step]
            with self._writing():
                atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in self.rows).encode())

    def _install_sigint(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self._stop:  # a second Ctrl-C: stop now (files are written atomically)
                raise KeyboardInterrupt
            self._stop = True
            print(f"\nstopping after this step; the checkpoint goes to {self.out} "
                  f"(Ctrl-C again to abort at once)", file=sys.stderr)

        return signal.signal(signal.SIGINT, handler)
