"""The cells and everything that makes them fast: one step of recurrence per
cell file (its equations, its hand-written backwards, its C kernels), the
engine choice and the one function a layer calls (:mod:`.engine`), the time
loop for any cell (:mod:`.unroll`), matrix products (:mod:`.gemm`), compiling
the C code (:mod:`.native`) and the process's allocator setting (:mod:`.memory`).

Every module here that defines a cell registers it by its ``name`` when it is
imported, and this package imports them all: a new cell is one file here
(see ARCHITECTURE.md, "Adding a cell").
"""

import importlib
import pkgutil

from rnnkit.kernels.cell import CELLS, Cell, State, cell_class, cell_options, length_mask
from rnnkit.kernels.engine import ENGINES, choose_engine, run_layer
from rnnkit.kernels.gru import GRUCell
from rnnkit.kernels.lstm import LSTMCell
from rnnkit.kernels.minimal import MinGRUCell, MinLSTMCell
from rnnkit.kernels.rnn import RNNCell

for _module in pkgutil.iter_modules(__path__):  # every cell file, so each registers its cell
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["CELLS", "Cell", "ENGINES", "GRUCell", "LSTMCell", "MinGRUCell", "MinLSTMCell", "RNNCell", "State",
           "cell_class", "cell_options", "choose_engine", "length_mask", "run_layer"]
