"""Training without backpropagation: a model whose only trained part is a
linear readout over fixed features (an echo state network, ``--encoder
esn``) is fitted in closed form, by ridge regression, in one pass over the
training batches (Jaeger 2001; Lukoševičius 2012, section 4.1)::

    [W c]ᵀ = (ZᵀZ + λ D)⁻¹ ZᵀY,     Z = [X 1],  D = diag(1, ..., 1, 0)

X (n, F) the features the readout reads (a classifier's pooled vectors, a
tagger's states at every tagged step after the washout), Y (n, K) what it
must output (labels one-hot), λ the model's ``ridge``. ZᵀZ and ZᵀY are
summed batch by batch in float64 (:class:`rnnkit.layers.reservoir.RidgeFit`),
so the memory is one batch's and two (F+1)-row matrices, whatever the
length of the data.

The Trainer hands itself to :func:`fit_readout` in place of its loop of
gradient steps; everything after (validation, the best checkpoint, the run
folder, ``--resume``, ``eval``, ``predict``) is as for any model. A model
takes part by three names: ``config.encoder == "esn"``, ``readout_rows(batch)
-> (X (n, F), Y (n, K))`` and ``set_readout(weight (K, F), bias (K,), mse (K,))``
(mse: the fit's mean squared error of each output on its rows, which a
Gaussian head can take as its variance). Under
torchrun every rank reads every batch and fits the same readout.
"""

from __future__ import annotations

import time

import torch

from rnnkit.data.batches import to_device
from rnnkit.errors import DataError
from rnnkit.layers.reservoir import RidgeFit


def applies(model) -> bool:
    """Whether ``model``'s readout is fitted in closed form instead of by gradient steps."""
    return getattr(getattr(model, "config", None), "encoder", None) == "esn"


def fit_readout(trainer) -> str:
    """Fit ``trainer.model``'s readout on one pass over the training batches and set it; the
    steps (one a batch) of the one epoch go into ``trainer.progress`` and a metrics line (rows fitted,
    the fit's mean squared error on them, seconds). Returns why training stopped: "closed form"."""
    model, p, began = trainer.model, trainer.progress, time.perf_counter()
    if p.step:  # resumed after the fit: the checkpoint holds the fitted readout
        return "closed form"
    fit, batches = None, 0
    model.eval()
    with torch.no_grad():
        for batch in trainer.batcher.batches(0, 0):
            features, targets = model.readout_rows(to_device(batch, trainer.device))  # (n, F), (n, K)
            fit = fit or RidgeFit(features.shape[1], targets.shape[1], model.config.ridge)
            fit.add(features.cpu(), targets.cpu())
            batches += 1
        if fit is None or fit.count == 0:
            raise DataError(f"{trainer.data.config.path}: no training rows for the readout (each sequence is "
                            f"shorter than --washout?); lower --washout")
        weight, bias = fit.solve()  # (K, F), (K,) float64
        mse = fit.squared_errors(weight, bias) / fit.count  # (K,)
        model.set_readout(weight, bias, mse)
    model.train()
    p.step, p.batch_index = batches, batches  # all of the first epoch
    p.elapsed += time.perf_counter() - began
    trainer._log({"step": p.step, "epoch": 1.0, "closed_form_rows": fit.count, "loss": float(mse.mean()),
                  "elapsed": round(p.elapsed, 2)})
    return "closed form"
