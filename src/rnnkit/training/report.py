"""``rnnkit report RUN``: one self-contained HTML file that shows a run and
why its recurrent network behaves as it does.

Sections every run has: the run (settings, size, how far it trained); loss,
learning-rate and gradient-norm curves; samples (those written while
training, and one from the best checkpoint where the task writes text);
gradient flow through time and the products of step Jacobians, for the
run's model and for the same architecture at initialisation with each of
the RNN, LSTM and GRU cells; spectral radius and saturated gates, now and
over training (runs trained with ``--diagnostics-every``). Then the task's own
(:meth:`rnnkit.tasks.Task.report_sections`): for a language model, units
drawn over a text (:func:`units_section`) with those that track quotes,
line position or brackets found for you, and the surprisal of each
character; for seq2seq and CTC, attention maps or CTC posteriorgrams.
Figures are PNGs inside the file; a few lines of script recolour the text
when another unit is chosen. No network, no external file.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
from pathlib import Path

import numpy as np
import torch

from rnnkit.data.batches import to_device
from rnnkit.data.files import exists
from rnnkit.diagnostics import diagnostic_batch, find_units, has_cells, measure, text_features
from rnnkit.diagnostics import read_text as read_with_model
from rnnkit.errors import ConfigError
from rnnkit.models.encoder import layers_in_words
from rnnkit.training.plots import gradient_flow_figure, over_training_figure, png, training_figure
from rnnkit.training.runs import read_metrics, write_output

COMPARED_CELLS = ("rnn", "lstm", "gru")
UNITS_SHOWN = 8  # units of each layer offered besides the ones found
SAMPLE_LENGTH = 300


def write_report(run: str, out: str | None, task, model, doc: dict, text: str | None, chars: int,
                 device: torch.device) -> int:
    """Write the report of the run folder ``run`` (its best ``model`` and config.json ``doc``, of
    ``task``, a :class:`rnnkit.tasks.Task`) to ``out`` (default RUN/report.html)."""
    if chars < 2:
        raise ConfigError(f"--text-length must be >= 2; got {chars}")
    rows = read_metrics(run)
    data, missing = _data_of(task, doc)
    sections = [("Run", _summary(run, model, doc, rows)),
                ("Training", figure_html(training_figure(rows)) if rows else
                 note_html("metrics.jsonl is empty or gone."))]
    samples = [(f"step {r['step']:,}", r["sample"]) for r in rows if "sample" in r][-3:]
    now = task.sample_text(model, doc.tokenizer, doc.labels, SAMPLE_LENGTH,
                           torch.Generator(device=device).manual_seed(0))
    if now is not None:
        samples.append(("the best checkpoint, now (temperature 0.8)", now))
    if samples:
        sections.append(("Samples", "".join(f"<h3>{html.escape(when)}</h3><pre>{html.escape(text)}</pre>"
                                            for when, text in samples)))
    if not has_cells(model):
        sections.append(("Gradient flow", note_html("This model has no recurrent cells (a tdnn or esn encoder).")))
    elif data is None:
        sections.append(("Gradient flow", note_html(missing)))
    else:
        batch = to_device(diagnostic_batch(data), device)
        now = measure(model, batch)
        sections.append(("Gradient flow through time", _gradient_flow(now, task, doc, batch)))
        sections.append(("Spectral radius and saturation", _recurrence(now, rows)))
    sections += task.report_sections(model, doc, data, text, chars, missing)
    target = Path(out or Path(run) / "report.html")
    page = _page(f"rnnkit report: {run}", sections)
    write_output(target, page.encode())
    print(f"wrote {target} ({len(page) / 1e6:.1f} MB, {len(sections)} sections); open it in a browser")
    return 0


# -- the run's data ---------------------------------------------------------------------------------


def _data_of(task, doc: dict):
    """The run's data, read as it trained on it; (None, why) when its files are gone."""
    cfg = doc.data
    gone = [p for p in (cfg.path, cfg.val_path) if p and not exists(p)]
    if gone:
        return None, f"The run's data {gone[0]} is gone, so nothing here is measured on it."
    return task.read_data(cfg, doc), ""


# -- sections -----------------------------------------------------------------------------------------


def _summary(run: str, model, doc: dict, rows: list[dict]) -> str:
    m, d = doc.model, doc.data
    timed = [r for r in rows if "elapsed" in r]
    vals = [r for r in rows if "val_loss" in r]
    facts = {"task": d.task, "data": d.path,
             "model": layers_in_words(getattr(model, "config", m)) + (" encoder" if hasattr(model, "encoder") else ""),
             "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
             "trained": f"{max(r['step'] for r in rows):,} steps, {timed[-1]['elapsed']:.0f} s" if timed else "-",
             "best validation loss": f"{min(r['val_loss'] for r in vals):.4f}" if vals else "-"}
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    config = json.loads((Path(run) / "config.json").read_text())
    return (f"<table>{table}</table><details><summary>config.json</summary>"
            f"<pre>{html.escape(json.dumps(config, indent=1))}</pre></details>")


def _gradient_flow(now: dict, task, doc: dict, batch) -> str:
    compared = {"gradient_flow": {}, "jacobian_norms": {}}
    for cell in COMPARED_CELLS:
        torch.manual_seed(0)
        fresh = task.build_model(dataclasses.replace(doc.model, cell=cell), doc.tokenizer,
                                 doc.labels, doc.target_tokenizer).to(batch.x.device)
        at_init = measure(fresh, batch)
        for kind in compared:
            compared[kind][cell.upper()] = list(at_init[kind].values())[-1]  # the top layer (seq2seq: decoder)
    return (f"<p>The gradient of the loss reaching each step's hidden state, ||dL/dh_k||, on {len(batch.x)} "
            "sequences of the validation split, and the largest singular value of the product of step Jacobians "
            "∂h_n/∂h_k over the first of them: how much of step n's state still depends on step k.</p>"
            + figure_html(gradient_flow_figure(now, "this run (best checkpoint)"))
            + "<p>The same architecture at initialisation, its top layer with each cell, on the same batch: "
              "the vanilla RNN's product of Jacobians decays geometrically, the LSTM's cell state and the GRU's "
              "update gate carry it further.</p>"
            + figure_html(gradient_flow_figure(compared, "at initialisation")))


def _recurrence(now: dict, rows: list[dict]) -> str:
    lines = []
    for layer, gates in now["spectral_radius"].items():
        saturated = now["saturation"].get(layer, {})
        for gate, rho in gates.items():
            left, right = saturated.get(gate, (float("nan"), float("nan")))
            lines.append(f"<tr><td>{html.escape(layer)}</td><td>{html.escape(gate)}</td><td>{rho:.3f}</td>"
                         f"<td>{100 * left:.1f} %</td><td>{100 * right:.1f} %</td></tr>")
    table = ("<table><tr><th>layer</th><th>gate</th><th>spectral radius ρ</th><th>saturated low</th>"
             "<th>saturated high</th></tr>" + "".join(lines) + "</table>")
    over = over_training_figure(rows)
    return ("<p>ρ of each gate's block of W_hh (above 1: the linear recursion grows), and the share of gate values "
            "below 0.1 or above 0.9 (tanh: below -0.9 or above 0.9) on the validation batch.</p>" + table
            + (figure_html(over) if over is not None else
               note_html("Train with --diagnostics-every N to see these over training.")))


def units_section(model, tokenizer, ids: torch.Tensor) -> str:
    """Units over a text and the surprisal of each token: a language model reads ``ids`` (T,)."""
    reading = read_with_model(model, ids)
    pieces = [tokenizer.decode([int(i)]) for i in ids]
    text = "".join(pieces)
    found = find_units(reading.activations, text_features(text)) if len(text) == len(ids) else []
    offered = [(f"{f.layer} #{f.unit}: {f.feature} (r = {f.correlation:+.2f})", f.layer, f.unit) for f in found]
    for layer, a in reading.activations.items():
        offered += [(f"{layer} #{u}", layer, u) for u in range(min(UNITS_SHOWN, a.shape[1]))]
    data = {"tokens": pieces,
            "surprisal": [None if np.isnan(s) else round(float(s), 2) for s in reading.surprisal],
            "units": [{"label": label, "values": np.round(reading.activations[layer][:, unit], 2).tolist()}
                      for label, layer, unit in offered]}
    worst = np.argsort(-np.nan_to_num(reading.surprisal, nan=-1.0))[:10]

    def shown(piece: str) -> str:
        return html.escape(piece).replace("\n", "⏎")

    def context(t: int) -> str:
        before, after = "".join(pieces[max(0, t - 20):t]), "".join(pieces[t + 1:t + 20])
        return f"<code>{shown(before)}<mark>{shown(pieces[t])}</mark>{shown(after)}</code>"

    table = "".join(f"<tr><td>{reading.surprisal[t]:.1f}</td><td>{context(t)}</td></tr>" for t in sorted(worst))
    found_rows = "".join(f"<tr><td>{html.escape(f.feature)}</td><td>{html.escape(f.layer)}</td><td>{f.unit}</td>"
                         f"<td>{f.correlation:+.2f}</td></tr>" for f in found)
    options = "".join(f'<option value="{k}">{html.escape(label)}</option>'
                      for k, (label, _, _) in enumerate(offered))
    return (f"<p>{len(ids):,} tokens read from a zero state. Choose what colours the text: the surprisal "
            "-log2 p of each token (white 0 bits, red 8 or more: what the model did not expect), or one unit's "
            "activation (blue -1, red +1).</p>"
            f'<p><select id="colour"><option value="surprisal">surprisal</option>{options}</select></p>'
            f'<div id="reading" class="reading"></div>'
            f'<script type="application/json" id="reading-data">{json_in_html(data)}</script>'
            "<h3>Units that track something you can name</h3><p>Pearson's r of each unit's activation with a "
            "feature of the text, the best three of any layer for each.</p>"
            + (f"<table><tr><th>feature</th><th>layer</th><th>unit</th><th>r</th></tr>{found_rows}</table>"
               if found else note_html("Nothing to look for: the text has no quotes, brackets or line breaks, or its "
                                   "tokens are not single characters."))
            + f"<h3>The most surprising tokens</h3><table><tr><th>bits</th><th>in context</th></tr>{table}</table>")


# -- the page -------------------------------------------------------------------------------------------


def figure_html(fig) -> str:
    """A matplotlib figure as a PNG inside the page."""
    data = base64.b64encode(png(fig)).decode()
    return f'<figure><img alt="figure" src="data:image/png;base64,{data}"></figure>'


def note_html(text: str) -> str:
    """A remark in place of a section that has nothing to show."""
    return f'<p class="note">{html.escape(text)}</p>'


def json_in_html(value) -> str:
    """JSON that a script element holds safely (no "</" to end it early)."""
    return json.dumps(value).replace("</", "<\\/")


STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1250px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { border-bottom: 1px solid #ddd; margin-top: 2em; } h3 { font-size: 1em; }
table { border-collapse: collapse; margin: 0.5em 0; } th, td { border: 1px solid #ddd; padding: 2px 8px; }
th { background: #f4f4f4; text-align: left; } img { max-width: 100%; }
pre { background: #f7f7f7; padding: 0.6em; white-space: pre-wrap; }
.note { color: #666; font-style: italic; } mark { background: #fbb; }
.reading { font: 13px/1.7 ui-monospace, monospace; white-space: pre-wrap; border: 1px solid #ddd; padding: 0.6em; }
"""

SCRIPT = """
(function () {
  const box = document.getElementById("reading");
  if (!box) return;
  const data = JSON.parse(document.getElementById("reading-data").textContent);
  const spans = data.tokens.map(function (token) {
    const span = document.createElement("span");
    span.textContent = token;
    box.appendChild(span);
    return span;
  });
  function paint(choice) {
    const values = choice === "surprisal" ? data.surprisal : data.units[Number(choice)].values;
    spans.forEach(function (span, t) {
      const v = values[t];
      if (v === null) { span.style.background = ""; span.title = ""; return; }
      if (choice === "surprisal") {
        span.style.background = "rgba(220, 40, 40, " + Math.min(v / 8, 1).toFixed(3) + ")";
        span.title = v.toFixed(1) + " bits";
      } else {
        const a = Math.min(Math.abs(v), 1).toFixed(3);
        span.style.background = v >= 0 ? "rgba(220, 40, 40, " + a + ")" : "rgba(40, 90, 220, " + a + ")";
        span.title = v.toFixed(2);
      }
    });
  }
  const select = document.getElementById("colour");
  select.addEventListener("change", function () { paint(select.value); });
  paint(select.value);
})();
"""


def _page(title: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<section><h2>{html.escape(name)}</h2>{content}</section>" for name, content in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
            f"<script>{SCRIPT}</script></body></html>")
