"""Writing a run's graphs (:mod:`rnnkit.models.portable`) as ONNX, for
``rnnkit export RUN --format onnx``.

Each graph is traced by ``torch.onnx.export``'s TorchScript-based exporter
(``dynamo=False``) on torch's own ops: the recurrent layers on the fused
engine, whose padded (packed) batches become ONNX's LSTM/GRU/RNN nodes with
``sequence_lens``, so the batch and time axes stay free. torch 2.13's
default, dynamo-based exporter (``torch.export``) refuses these models: a
layer's checks on its lengths (``int(lengths.max()) > T``) are
data-dependent branches that ``torch.export`` cannot trace without
rewriting the layer, while the tracer records the branch the example takes
(the packed one; the examples are always padded). A cell that torch has no
fused kernel for runs on rnnkit's own loop over time, which a trace would
unroll to the example's length: it is refused (the minimal cells' scan,
which does have a whole-sequence form, traced to graphs that disagree with
rnnkit on other lengths; the check below caught it).

Every graph is checked before anything is written: onnxruntime runs it on
two examples of other sizes than the traced one, and its outputs must equal
rnnkit's to ``TOLERANCE``; a graph that does not is refused, in one line.
The folder then gets ``NAME.onnx`` per graph and ``export.json``: each
graph's inputs and outputs (names, dtypes, shapes: a letter for a free axis),
the tokenizer's vocabulary and the labels, so that a program outside Python
can encode its input and read the output; and whatever the task adds (a
CRF's transitions).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from rnnkit.errors import ConfigError
from rnnkit.layers.recurrent import Recurrent
from rnnkit.layers.reservoir import Reservoir
from rnnkit.models.portable import Graph
from rnnkit.version import __version__

FORMATS = ("onnx",)
OPSET = 17
TOLERANCE = 1e-5  # fp32: |onnxruntime - rnnkit| <= TOLERANCE (1 + |rnnkit|) everywhere
CHECK_SIZES = ((3, 9), (1, 4))  # (batch, time) of the examples each graph is checked on; traced on (2, 5)
NUMPY_DTYPES = {"int64": "int64", "float32": "float32", "bool": "bool"}


def require_onnx():
    """(onnx, onnxruntime), or a ConfigError that says how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ConfigError("export needs onnx and onnxruntime: pip install 'rnnkit[export]'") from None
    return onnx, onnxruntime


def on_torch_ops(model: torch.nn.Module, run: str) -> None:
    """Put every recurrent layer of ``model`` on the fused engine (torch's ops, a free time axis), or a
    ConfigError naming the cell that has none (or the echo state reservoir, a loop over time too)."""
    for name, layer in model.named_modules():
        if isinstance(layer, Reservoir):
            raise ConfigError(f"{run}: its echo state reservoir runs with rnnkit's own loop over time, which a "
                              f"graph cannot hold with a free time axis; export takes rnn and tdnn encoders")
        if not isinstance(layer, Recurrent):
            continue
        if layer.cells[0].fused_kernel() is None or layer.skip_steps:
            what = f"{layer.cell_type} cell" + (" with skip connections" if layer.skip_steps else "")
            raise ConfigError(f"{run}: its {what} has no ONNX node: rnnkit runs it with its own loop over time, "
                              f"which a graph cannot hold with a free time axis; export takes lstm, gru and rnn cells")
        layer.engine = "fused"


def run_graph(session, graph: Graph, inputs: tuple[torch.Tensor, ...]) -> list:
    """onnxruntime's outputs (NumPy arrays) of ``graph`` on ``inputs``."""
    feed = {port.name: tensor.numpy() for port, tensor in zip(graph.inputs, inputs)}
    return session.run(None, feed)


def close(have: torch.Tensor, want: torch.Tensor) -> bool:
    """Whether ``have`` equals ``want`` to ``TOLERANCE`` (infinities exactly; bool exactly)."""
    if want.dtype == torch.bool or not want.is_floating_point():
        return bool((have == want).all())
    return bool(torch.isclose(have, want, rtol=TOLERANCE, atol=TOLERANCE).all())


def check(session, graph: Graph, run: str) -> None:
    """A ConfigError unless onnxruntime's outputs of ``graph`` equal rnnkit's on examples of other
    sizes than the traced one (the free axes are free, and nothing was traced as a constant)."""
    for batch, time in CHECK_SIZES:
        inputs = graph.example(batch, time)
        with torch.no_grad():
            expected = graph.module(*inputs)
        try:
            got = run_graph(session, graph, inputs)
        except Exception as error:  # onnxruntime's own kinds of error
            raise ConfigError(f"{run}: onnxruntime cannot run the exported {graph.name}: "
                              f"{str(error).splitlines()[0]}") from None
        for port, want, have in zip(graph.outputs, expected, got):
            have = torch.from_numpy(have)
            if have.shape != want.shape:
                raise ConfigError(f"{run}: the exported {graph.name} gives {port.name} of shape {tuple(have.shape)} "
                                  f"at batch {batch}, length {time}, rnnkit {tuple(want.shape)}; not exported")
            if not close(have, want):
                raise ConfigError(f"{run}: the exported {graph.name}'s {port.name} differs from rnnkit's at batch "
                                  f"{batch}, length {time}; this model cannot be exported faithfully")


@contextlib.contextmanager
def quiet_stderr():
    """File descriptor 2 sent to /dev/null: the exporter's C++ notes on packed sequences' shapes
    (which the check after export covers) would otherwise reach the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def export_graph(graph: Graph, path: Path) -> None:
    """``graph`` as ONNX at ``path``, its letter axes free."""
    dynamic = {port.name: {k: axis for k, axis in enumerate(port.shape) if isinstance(axis, str)}
               for port in graph.inputs + graph.outputs}
    graph.module.eval()
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), quiet_stderr():
        warnings.simplefilter("ignore")  # the tracer's notes on the layers' checks of their lengths
        torch.onnx.export(graph.module, graph.example(2, 5), str(path), input_names=[p.name for p in graph.inputs],
                          output_names=[p.name for p in graph.outputs], dynamic_axes=dynamic, opset_version=OPSET,
                          dynamo=False)


def describe(graph: Graph) -> dict:
    """``graph``'s entry in export.json."""
    def ports(items):
        return [{"name": p.name, "dtype": p.dtype, "shape": list(p.shape), **({"doc": p.doc} if p.doc else {})}
                for p in items]
    return {"file": f"{graph.name}.onnx", "doc": graph.doc, "inputs": ports(graph.inputs),
            "outputs": ports(graph.outputs)}


def sidecar_of(run) -> dict:
    """What export.json says of a run (a :class:`rnnkit.training.run_config.Run`) besides its graphs: the
    task, the tokenizers (with their vocabularies: how to turn text into ids) and the labels."""
    doc = {"task": run.task, "tokenizer": run.tokenizer.to_dict()}
    if run.target_tokenizer is not None:
        doc["target_tokenizer"] = run.target_tokenizer.to_dict()
    if run.labels:
        doc["labels"] = run.labels
    return doc


def write_export(graphs: list[Graph], out: str | Path, run: str, sidecar: dict,
                 files: dict[str, dict] | None = None) -> Path:
    """Every graph as ``out/NAME.onnx``, checked in onnxruntime, ``out/export.json`` (``sidecar`` and
    each graph's ports) and each of ``files`` (name -> a JSON document, such as a CRF's transitions);
    nothing is written unless all graphs pass their check, and nothing else in ``out`` is touched."""
    onnx, onnxruntime = require_onnx()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; export writes a folder: choose another --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    except OSError as error:
        raise ConfigError(f"cannot write {out}: {error.strerror}; choose another --out") from None
    try:
        for graph in graphs:
            path = staging / f"{graph.name}.onnx"
            export_graph(graph, path)
            onnx.checker.check_model(str(path))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.log_severity_level = 4  # its failures become check's one line, not a log line too
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            check(session, graph, run)
        doc = {"format": "onnx", "opset": OPSET, "rnnkit_version": __version__, **sidecar,
               "graphs": {graph.name: describe(graph) for graph in graphs}}
        for name, content in {**(files or {}), "export.json": doc}.items():
            (staging / name).write_text(json.dumps(content, indent=1) + "\n")
        out.mkdir(exist_ok=True)
        for path in sorted(staging.iterdir()):
            os.replace(path, out / path.name)
    except OSError as error:
        raise ConfigError(f"cannot write {out}: {error.strerror}; choose another --out") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
