"""Seizure-detection streams built from the Bonn EEG archive: real signals,
synthetic boundaries.

The Bonn sets hold separate 23.6 s segments, not continuous recordings:
sets A-D have no seizure, set E is recorded during seizures. A stream here
is segments laid end to end, each sample labelled ``seizure`` (from E) or
``none`` (from A-D), so that a detector tagging sample by sample meets
seizure onsets as it would at a bedside. The signals are real; the
boundaries between segments are not (each one joins two unrelated
recordings, often from different subjects and electrodes, with a jump in
level and amplitude), so a detector could learn to react to a junction
rather than to a seizure: most junctions join two non-seizure segments
(there are four times as many of them), which makes a junction weak
evidence of a seizure.

:func:`bonn_streams` splits the recordings first (stratified by set, seeded)
into training, validation and held-out parts and builds one stream of each,
so the held-out stream holds only recordings the others never contain.
Within a stream the non-seizure segments come in a seeded random order and
every seizure segment is put between two of them (never two seizures in a
row, never one first), so each is one event with an onset.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.recordings import read_recordings
from rnnkit.data.windows import split_recordings

SEIZURE, NONE = "seizure", "none"


@dataclass
class Stream:
    """Samples ``x`` (T,) and labels ``y`` (T,) of 0/1 (1: seizure), with the recordings it joins, in order."""

    x: np.ndarray
    y: np.ndarray
    names: list[str]

    def write(self, path: str | Path) -> None:
        """A CSV of ``eeg,label`` rows (label ``seizure`` or ``none``), as ``rnnkit train --task tag`` reads."""
        with open(path, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["eeg", "label"])
            writer.writerows(zip((f"{v:g}" for v in self.x), (SEIZURE if v else NONE for v in self.y)))


def join(recordings, seed: int) -> Stream:
    """The recordings (labels ``E`` for seizure, anything else none) as one stream: the others in a
    seeded order, each seizure segment after a distinct one of them."""
    rng = np.random.default_rng(seed)
    calm = [r for r in recordings if r.label != "E"]
    seizures = [r for r in recordings if r.label == "E"]
    if len(seizures) > len(calm):
        raise ValueError(f"join: {len(seizures)} seizure segments need as many others to follow; got {len(calm)}")
    calm = [calm[i] for i in rng.permutation(len(calm))]
    after = set(rng.choice(len(calm), size=len(seizures), replace=False).tolist())  # a seizure follows these
    order, queue = [], [seizures[i] for i in rng.permutation(len(seizures))]
    for i, r in enumerate(calm):
        order.append(r)
        if i in after:
            order.append(queue.pop())
    x = np.concatenate([r.x[:, 0] for r in order])
    y = np.concatenate([np.full(len(r.x), r.label == "E", dtype=np.int64) for r in order])
    return Stream(x, y, [r.name for r in order])


def bonn_streams(path: str | Path, val: float = 0.1, held_out: float = 0.2, seed: int = 0) -> dict[str, Stream]:
    """Streams ``train``, ``val`` and ``test`` from the Bonn archive at ``path``: ``val`` and
    ``held_out`` of each set's recordings (stratified, seeded) go only into the validation and the
    held-out (test) stream, the rest only into the training stream."""
    recordings = read_recordings(path, "A,B,C,D,E")
    split = split_recordings([r.label for r in recordings], val, held_out)
    return {name: join([recordings[i] for i in index], seed + n) for n, (name, index) in enumerate(split.items())}
