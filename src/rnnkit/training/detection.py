"""Event detection in a stream tagged sample by sample (seizures in an EEG):
a causal smoothing rule that turns per-sample decisions into alarms, and
the two figures a bedside detector is judged by, the latency after each
event's onset and the false alarms an hour.

The rule (``k`` of ``n``): with d_t ∈ {0, 1} the detector's decision at
sample t (1: the event's label predicted), the alarm is on at t when

    a_t = [ Σ_{s = t-n+1..t} d_s >= k ]

(only samples up to t: it can run as the stream arrives). An alarm starts
where a_t rises from 0 to 1.

Scoring against the true labels y_t ∈ {0, 1} sampled at ``rate`` Hz:

- an event is a maximal run of y_t = 1, from its onset t_0 to its end;
  its latency is (t_1 - t_0) / rate seconds, t_1 the first sample of the
  event with a_t = 1 (an alarm already on at the onset counts from there:
  latency 0); an event with no such sample is missed;
- a false alarm is an alarm that starts at a sample with y_t = 0; the rate
  is their count over the hours of y_t = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def smoothed_alarm(decisions: np.ndarray, n: int, k: int) -> np.ndarray:
    """a_t = [at least ``k`` of the last ``n`` decisions are 1] (T,) bool, from d (T,) of 0/1."""
    if not 1 <= k <= n:
        raise ValueError(f"smoothed_alarm: need 1 <= k <= n, got k={k}, n={n}")
    d = np.asarray(decisions, dtype=np.int64)
    running = np.cumsum(np.concatenate([[0], d]))  # running[t + 1] = Σ_{s <= t} d_s
    start = np.maximum(np.arange(len(d)) - n + 1, 0)
    return running[1:] - running[start] >= k


def events(labels: np.ndarray) -> list[tuple[int, int]]:
    """[onset, end) of each maximal run of 1 in ``labels`` (T,) of 0/1."""
    y = np.concatenate([[0], np.asarray(labels, dtype=np.int64), [0]])
    edges = np.flatnonzero(np.diff(y))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


@dataclass
class Detection:
    """Latencies in seconds of the events detected (in order; None for one missed), the false alarms,
    and the hours without an event."""

    latencies: list[float | None]
    false_alarms: int
    hours_without_event: float

    @property
    def detected(self) -> list[float]:
        """The latencies of the events detected, in order."""
        return [latency for latency in self.latencies if latency is not None]

    @property
    def missed(self) -> int:
        """The number of events missed."""
        return sum(latency is None for latency in self.latencies)

    @property
    def false_alarms_per_hour(self) -> float:
        """False alarms per hour without an event (0 when there was no such hour)."""
        return self.false_alarms / self.hours_without_event if self.hours_without_event else 0.0

    def latency(self, q: float) -> float:
        """The ``q`` quantile (0.5: the median) of the detected events' latencies (nan if none)."""
        return float(np.quantile(self.detected, q)) if self.detected else float("nan")

    def describe(self) -> str:
        """One line: events, missed, median and 90th-percentile latency, false alarms and their rate."""
        return (f"{len(self.latencies)} events, {self.missed} missed; latency median {self.latency(0.5):.2f} s, "
                f"90th percentile {self.latency(0.9):.2f} s; {self.false_alarms} false alarm(s) in "
                f"{self.hours_without_event:.2f} h without an event ({self.false_alarms_per_hour:.2f} an hour)")


def score_detection(labels: np.ndarray, decisions: np.ndarray, rate: float, n: int, k: int) -> Detection:
    """:class:`Detection` of per-sample ``decisions`` (T,) against true ``labels`` (T,) (both 0/1),
    sampled at ``rate`` Hz, under the ``k``-of-``n`` rule (see the module docstring)."""
    y = np.asarray(labels, dtype=bool)
    if len(y) != len(decisions):
        raise ValueError(f"score_detection: {len(y)} labels but {len(decisions)} decisions")
    alarm = smoothed_alarm(decisions, n, k)
    latencies = []
    for onset, end in events(y):
        on = np.flatnonzero(alarm[onset:end])
        latencies.append(float(on[0]) / rate if len(on) else None)
    starts = np.flatnonzero(alarm & ~np.concatenate([[False], alarm[:-1]]))  # where a_t rises
    false_alarms = int((~y[starts]).sum())
    return Detection(latencies, false_alarms, float((~y).sum()) / rate / 3600)
