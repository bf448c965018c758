"""Seeing why recurrent networks behave as they do: gradient flow through time
and the products of step Jacobians (:mod:`.gradients`), the spectral radius of
each recurrent matrix (:mod:`.spectra`), saturated gates and units
(:mod:`.saturation`), all of them at once (:mod:`.measure`), for any model
rnnkit trains; each a measurement on the model's own cells, recorded step by
step (:mod:`.tracing`). And for a language model, what single units do over a
text and how surprised it is by each character (:mod:`.units`)."""

from rnnkit.diagnostics.gradients import Curve, gradient_flow, jacobian_norms
from rnnkit.diagnostics.measure import diagnostic_batch, measure
from rnnkit.diagnostics.saturation import saturation
from rnnkit.diagnostics.spectra import spectral_radii
from rnnkit.diagnostics.tracing import has_cells
from rnnkit.diagnostics.units import Finding, Reading, find_units, read_text, text_features

__all__ = ["Curve", "Finding", "Reading", "diagnostic_batch", "find_units", "gradient_flow", "has_cells",
           "jacobian_norms", "measure", "read_text", "saturation", "spectral_radii", "text_features"]
