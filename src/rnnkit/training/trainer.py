"""One training loop: truncated BPTT over carried state, schedules, clipping, evaluation, checkpoints that
resume exactly (:mod:`rnnkit.training.checkpoint`), and Ctrl-C that saves.

The loop knows nothing task-specific: the model gives ``loss(batch, state) -> (loss, state)``; a state it
returns (a language model's) is detached and passed back with the next batch of the same epoch (the batches
continue each other), and reset to zero at each new epoch; classifiers and taggers return None. What
validation measures is the task's (:class:`rnnkit.tasks.Task`, which the Trainer is handed), and so is
the metric that picks the best checkpoint unless ``--best-by`` names another. A model whose readout is
fitted in closed form (an esn) takes one pass of :mod:`rnnkit.training.closed_form` in place of the loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from rnnkit.config import TrainConfig
from rnnkit.data.batches import to_device
from rnnkit.diagnostics import diagnostic_batch, has_cells, measure as measure_diagnostics
from rnnkit.errors import CheckpointError, ConfigError, TrainingError
from rnnkit.kernels.memory import keep_freed_memory
from rnnkit.layers import engines_in
from rnnkit.training import closed_form, distributed
from rnnkit.training.averaging import averaged_weights, averaging
from rnnkit.training.board import Board
from rnnkit.training.checkpoint import Progress, altered, load_checkpoint, save_checkpoint
from rnnkit.training.device import resolve_device, resolve_precision
from rnnkit.training.footprint import Footprint, measure as measure_footprint, size
from rnnkit.training.interrupt import ctrl_c_stops
from rnnkit.training.nonfinite import skip_step
from rnnkit.training.optim import Budget, add_l1_subgradient, all_finite, build_optimizer, clip_gradients, learning_rate
from rnnkit.training.plots import plot_losses
from rnnkit.training.rewrites import Rewrites
from rnnkit.training.run_config import CONFIG, Run, check_run, resign_checkpoints, structure_digest, write_run
from rnnkit.training.runs import (BEST, LAST, METRICS, PLOT, default_folder, load_tensors, remove_partial_writes,
                                  run_lock, save_tensors, truncate_metrics)


class Trainer:
    """Train ``model`` on ``data`` as ``config`` says, writing the run folder ``out``;
    ``task`` (:class:`rnnkit.tasks.Task`) validates and picks the best checkpoint
    (``rnnkit.Trainer`` finds it from ``data.config.task`` when not given).

    ``callbacks`` are called as ``f(trainer)`` after every step (``trainer.step``; ``trainer.progress``, a
    :class:`~rnnkit.training.checkpoint.Progress`, holds the rest of where training is).
    """

    def __init__(self, model, data, config: TrainConfig, out: str | Path | None = None,
                 callbacks=(), quiet: bool = False, *, task):
        self.out = Path(out or config.out or default_folder(data.config.path))
        self.task = task  # validation, the best checkpoint's criterion, samples (rnnkit.tasks.Task)
        self.cfg = config = dataclasses.replace(task.own(config), out=str(self.out))  # the task's own settings
        self.criterion = task.criterion_by(config.best_by, data)  # lower is better (--best-by)
        self.data = data
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.callbacks = [c for c in (averaging(config.weight_average), *callbacks) if c]  # the average first
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
        self.budget = Budget.of(config)
        self.progress = Progress()  # position and bookkeeping, all saved in last.safetensors
        self.saved_step: int | None = None  # the step of the last checkpoint written
        self.rewrites = Rewrites()  # when an evaluation rewrites the last checkpoint and the plot
        self.config_digest: str | None = None  # what the weights mean (run_config.structure_digest), in each checkpoint
        self.carry = None  # recurrent state carried to the next batch
        self._step_notes: dict = {}  # what the task set before the last step (teacher forcing), logged with it
        self.rows: list[dict] = []
        self.board: Board | None = None  # TensorBoard's event files, with --log tensorboard
        self._fixed_batch: tuple | None = None  # what --diagnostics-every measures on
        self._stop = False
        if config.diagnostics_every and not has_cells(self.model):
            raise ConfigError("--diagnostics-every inspects recurrent cells, and this model has none (a tdnn "
                              "encoder); drop --diagnostics-every")
        # each recurrent layer's engine (rnnkit.kernels.choose_engine), in config.json: evaluation takes the same
        self.engines = engines_in(self.model, self.device)
        keep_freed_memory()  # a step reuses its activations' pages instead of faulting them in again

    # -- public ---------------------------------------------------------------

    def holds_run(self) -> bool:
        """Whether ``out`` already has checkpoints (that a fresh run would overwrite)."""
        return (self.out / LAST).exists() or (self.out / BEST).exists()

    @property
    def step(self) -> int:
        """The steps taken (``progress.step``), which callbacks read to act at a step."""
        return self.progress.step

    def request_stop(self) -> None:
        """End training after the current step, as Ctrl-C does."""
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
        """Train (``resume``: on from ``out``'s last checkpoint) until the budget (``max_steps``, ``max_epochs``,
        ``time_limit``; 5 minutes when none is set) is spent, early stopping fires, or Ctrl-C; a summary dict."""
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
        run = Run(self.model.config, self.data.config, self.cfg, self.data.tokenizer,
                  getattr(self.data, "target_tokenizer", None), getattr(self.data, "labels", None), self.engines,
                  self.data.digest)
        self.config_digest = structure_digest(run.to_json())
        if self.writes:
            with self._writing():
                if resume:  # an older format's checkpoints, moved to the config.json now written
                    resign_checkpoints(self.out, self.config_digest)
                write_run(self.out, run)
        if self.writes and self.cfg.log == "tensorboard":
            self.board = Board(self.out)
        bar = tqdm(total=100, disable=self.quiet or not sys.stderr.isatty(), leave=False,
                   bar_format="{percentage:3.0f}%|{bar:20}| {elapsed}<{remaining} {postfix}")
        try:
            with ctrl_c_stops(self.request_stop, lambda: self._stop, self.out):
                try:
                    reason = self._loop(bar)
                finally:
                    bar.close()
            result = self._evaluate_and_save(final=True) if reason != "interrupted" else self._save_last_and_plot()
        finally:
            if self.board is not None:
                self.board.close()
        p = self.progress
        return {"stopped": reason, "step": p.step, "epoch": p.epoch, "elapsed": p.elapsed, "best_val": p.best_val,
                "skipped_steps": p.skipped_steps, "out": str(self.out), **(result or {})}

    # -- the loop -------------------------------------------------------------

    def _budget_spent(self) -> float:
        p = self.progress
        return self.budget.spent(p.step, p.epoch + p.batch_index / self.batcher.num_batches(p.epoch), p.elapsed)

    def _loop(self, bar) -> str:
        """Train until the budget is spent, early stopping fires or a stop is asked for; returns which."""
        model, cfg, p = self.model, self.cfg, self.progress
        if closed_form.applies(model):  # a readout by ridge regression in one pass, no gradient steps
            return closed_form.fit_readout(self)
        model.train()
        started = time.perf_counter() - p.elapsed
        tick, tick_tokens = time.perf_counter(), 0
        while True:
            for batch in self.batcher.batches(p.epoch, p.batch_index):
                lr, tokens = self._train_step(batch)
                p.step += 1
                p.batch_index += 1
                p.elapsed = time.perf_counter() - started
                if self.group:  # one clock and one stop decision for all ranks: the slowest rank's time
                    p.elapsed, stop = distributed.all_max(p.elapsed, float(self._stop))
                    self._stop = bool(stop)
                tick_tokens += tokens
                if p.step % cfg.log_every == 0 and p.log_count:
                    now = time.perf_counter()
                    self._log_metrics(lr, tick_tokens / max(now - tick, 1e-9), bar)
                    tick, tick_tokens = now, 0
                bar.n = round(100 * min(self._budget_spent(), 1.0), 1)
                bar.refresh()
                for callback in self.callbacks:
                    callback(self)
                if cfg.diagnostics_every and p.step % cfg.diagnostics_every == 0 and self.writes:
                    self._log({"step": p.step, "diagnostics": measure_diagnostics(model, self._diagnostic_batch())})
                    started = time.perf_counter() - p.elapsed  # measuring is not budget, as evaluating
                if self._budget_spent() >= 1.0:
                    return "budget"
                if self._stop:
                    return "interrupted"
                if cfg.save_every and p.step % cfg.save_every == 0 and p.step % cfg.eval_every:
                    self._save_last()
                if p.step % cfg.eval_every == 0:
                    self._evaluate_and_save(bar)
                    started = (tick := time.perf_counter()) - p.elapsed  # evaluation time is not budget
                    if cfg.patience and p.evals_without_improvement >= cfg.patience:
                        return "early stopping"
            p.epoch += 1
            p.batch_index = 0
            self.carry = None

    def _train_step(self, batch: tuple) -> tuple[float, int]:
        """One step on ``batch``: set the rate, the loss under autocast (under torchrun, of this rank's rows,
        weighted by its share of the global batch), backward, clip, and update, or, when the loss or the gradient
        norm is not finite, no update and the ``--on-nonfinite`` policy. Returns the rate and the tokens read."""
        model, opt, cfg, p = self.model, self.optimizer, self.cfg, self.progress
        lr = learning_rate(cfg, p.step, self._budget_spent()) * p.lr_scale
        for group in opt.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # discriminative rates (optim.layer_rates)
        self._step_notes = self.task.before_step(model, p.step, cfg)  # seq2seq's scheduled sampling
        batch, has_rows = to_device(batch, self.device), True
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
            p.nonfinite_in_a_row = 0
            p.log_sum += value
            p.log_norm_sum += norm
            p.log_count += 1
            if state is not None:
                self.carry = tuple(s.detach() for s in state)  # truncate BPTT here
        else:  # no update; the next batch starts from a zero state
            self._skip(*(("loss", value) if not math.isfinite(value) else ("gradient norm", norm)))
            self.carry = None
        return lr, batch.x.shape[0] * batch.x.shape[1]  # (B, T), or (B, T, F) of vectors

    def _log_metrics(self, lr: float, speed: float, bar) -> None:
        """A metrics line: the mean loss and gradient norm of the steps since the last one."""
        p = self.progress
        self._log({"step": p.step, "epoch": round(p.epoch + p.batch_index / self.batcher.num_batches(p.epoch), 4),
                   "loss": p.log_sum / p.log_count, "lr": lr, "grad_norm": round(p.log_norm_sum / p.log_count, 4),
                   **self._step_notes, "tokens_per_s": round(speed, 1), "elapsed": round(p.elapsed, 2)})
        p.log_sum, p.log_norm_sum, p.log_count = 0.0, 0.0, 0
        loss = self.rows[-1]["loss"]
        bar.set_postfix_str(f"loss {loss:.3f} ({loss / math.log(2):.3f} bpc) {speed:,.0f} tok/s", refresh=False)

    def _log(self, row: dict) -> None:
        self.rows.append(row)
        if not self.writes:
            return
        with self._writing(), open(self.out / METRICS, "a") as f:
            f.write(json.dumps(row) + "\n")
            if self.board is not None:
                self.board.log(row)

    def _diagnostic_batch(self) -> tuple:
        if self._fixed_batch is None:
            self._fixed_batch = to_device(diagnostic_batch(self.data), self.device)
        return self._fixed_batch

    def _skip(self, what: str, value: float) -> None:
        """Step ``self.step + 1``'s ``what`` (loss or gradient norm) is ``value``, not finite: --on-nonfinite."""
        step, p = self.step + 1, self.progress
        warning = skip_step(self.cfg.on_nonfinite, p, what, value, step, all_finite(self.model.parameters()),
                            self._kept())
        self._log({"step": step, "nonfinite": f"{what} {value}", "skipped_steps": p.skipped_steps,
                   "lr_scale": p.lr_scale})
        if not self.quiet:
            tqdm.write(warning, file=sys.stderr)

    def _kept(self) -> str:
        """Where the last checkpoint is, for a message that ends training."""
        return (f"the last checkpoint (step {self.saved_step}) is in {self.out}" if self.saved_step is not None
                else "nothing was saved yet")

    @contextlib.contextmanager
    def _writing(self):
        """A write into the run folder; one that fails (a full disk) ends training with a message that says
        what is still there: every file is replaced atomically, so the previous checkpoint is whole."""
        try:
            yield
        except OSError as e:
            kept = (f"the last checkpoint (step {self.saved_step}) is intact" if self.saved_step is not None
                    else "no checkpoint was written yet")
            raise TrainingError(f"could not write to {self.out}: {e.strerror or e}; {kept}: free space, then "
                                f"continue with: rnnkit train --resume --out {self.out}") from None

    # -- evaluation and checkpoints -------------------------------------------

    def _evaluate_and_save(self, bar=None, final: bool = False) -> dict:
        """Validate (the averaged weights under --weight-average); the best checkpoint if improved; a sample;
        the last checkpoint (the optimizer's weights) and the plot at the end or when due (rewrites.py)"""
        with averaged_weights(self.optimizer, self.model):
            metrics = self.task.validate(self.model, self.data, "val", self.group, self.cfg)
            result = {"val_" + k: v for k, v in metrics.items()}
            if result:
                self._log({"step": self.step, **result})
            value = self.criterion(metrics) if metrics else math.inf  # none: the last is best
            self._refuse_nonfinite_weights()
            if not result or value < self.progress.best_val:
                self.progress.best_val = value
                self.progress.evals_without_improvement = 0
                if self.writes:
                    with self._writing():
                        save_tensors(self.out / BEST, self.model.state_dict(),
                                     {"step": self.step, "config_sha256": self.config_digest, **result})
            else:
                self.progress.evals_without_improvement += 1
            sample = None
            if self.writes:
                gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + self.step)
                sample = self.task.evaluation_sample(self.model, self.data, self.cfg, gen)
                if sample is not None:
                    self._log({"step": self.step, "sample": sample})
        if final or self.rewrites.due(self.step, self.cfg.save_every, self.group):
            self.rewrites.run(self._save_last_and_plot)
        self._report(result, bar, sample)
        return result

    def _report(self, result: dict, bar, sample: str | None) -> None:
        if self.quiet:
            return
        line = f"step {self.step:,} | epoch {self.progress.epoch + 1} | {self.progress.elapsed:.0f}s"
        write = bar.write if bar is not None else print
        val = {k[4:]: v for k, v in result.items()}
        write(line + (" | val " + self.task.describe_metrics(val, self.data) if result else ""))
        if sample is not None:
            write(sample + "\n" + "-" * 40)

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
            return self.task.validate(self.model, self.data, "test", self.group)
        finally:
            self.model.load_state_dict(current)

    def _refuse_nonfinite_weights(self) -> None:
        if not all_finite(self.model.parameters()):
            kept = f"step {self.saved_step}" if self.saved_step is not None else "none yet"
            raise TrainingError(f"the weights are not finite at step {self.step}, so they were not saved (the last "
                                f"checkpoint in {self.out}: {kept}); resume from it with a lower --lr")

    def _save_last_and_plot(self) -> None:
        self._save_last()
        if self.writes:
            with self._writing():
                plot_losses(self.rows, self.out / PLOT, title=str(self.out))

    def _save_last(self) -> None:
        self._refuse_nonfinite_weights()
        with self._writing():  # every rank takes part, rank 0 writes
            save_checkpoint(self.out / LAST, self.model, self.optimizer, self.progress, self.carry, group=self.group,
                            device=self.device, optimizer_name=self.cfg.optimizer, config_sha256=self.config_digest)
        self.saved_step = self.step

    def _restore(self) -> None:
        """Take up the run in ``out`` from last.safetensors (:mod:`rnnkit.training.checkpoint`)."""
        path = self.out / LAST
        if (self.out / CONFIG).exists():  # refuses a config.json edited after the checkpoints were written
            check_run(self.out, lambda name: self.task.configs())
        self.progress, self.carry = load_checkpoint(
            path, self.model, self.optimizer, group=self.group, device=self.device, optimizer_name=self.cfg.optimizer,
            batch_size=self.data.config.batch_size, seed=self.cfg.seed)
        self.saved_step = self.step
        try:  # the metrics up to the checkpoint; the steps after it are redone
            with self._writing():
                self.rows = truncate_metrics(self.out, self.step)
        except (KeyError, TypeError, ValueError) as e:  # a row without a step: the folder was altered
            raise altered(path, e) from None
