"""TensorBoard event files of a run (``--log tensorboard``), through
``torch.utils.tensorboard``: what the trainer writes to metrics.jsonl, as
TensorBoard shows it. Scalars under their metrics.jsonl names (loss, lr,
grad_norm, val_loss, ...); diagnostics as scalars (``spectral_radius/LAYER/GATE``,
``saturation/LAYER/GATE``: the saturated fraction, both ends) and as the
gradient-flow figure; samples as text."""

from __future__ import annotations

from pathlib import Path

from rnnkit.errors import ConfigError
from rnnkit.training.plots import gradient_flow_figure

FOLDER = "tensorboard"


class Board:
    """A run's TensorBoard writer (the module docstring): ``log(row)`` each metrics.jsonl row, then ``close()``."""

    def __init__(self, run: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--log tensorboard needs the tensorboard package: pip install tensorboard") from None
        self.writer = SummaryWriter(str(run / FOLDER))

    def log(self, row: dict) -> None:
        """Write one metrics.jsonl row at its ``step``: its numbers as scalars, a sample as text, diagnostics
        as scalars and the gradient-flow figure."""
        step = row["step"]
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)
        if "sample" in row:
            self.writer.add_text("sample", "    " + row["sample"].replace("\n", "\n    "), step)  # as code
        if "diagnostics" in row:
            d = row["diagnostics"]
            for layer, gates in d["spectral_radius"].items():
                for gate, rho in gates.items():
                    self.writer.add_scalar(f"spectral_radius/{layer}/{gate}", rho, step)
            for layer, gates in d["saturation"].items():
                for gate, (left, right) in gates.items():
                    self.writer.add_scalar(f"saturation/{layer}/{gate}", left + right, step)
            self.writer.add_figure("gradient_flow", gradient_flow_figure(d, f"step {step:,}"), step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event files."""
        self.writer.close()
