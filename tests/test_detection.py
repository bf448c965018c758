"""Seizure-style event detection: the causal k-of-n alarm rule against a
brute-force loop, and latency and false alarms on a generated stream whose
onsets and spurious detections are known."""

import numpy as np
import pytest

from rnnkit.training.detection import events, score_detection, smoothed_alarm


def test_the_alarm_is_on_where_k_of_the_last_n_decisions_are_and_reads_no_later_sample():
    rng = np.random.default_rng(0)
    d = (rng.random(300) < 0.3).astype(int)
    for n, k in ((1, 1), (5, 3), (20, 12)):
        expected = [d[max(0, t - n + 1):t + 1].sum() >= k for t in range(len(d))]
        assert smoothed_alarm(d, n, k).tolist() == expected
        changed = d.copy()
        changed[150:] = 1 - changed[150:]  # the future changed: the past alarm stays as it was
        assert np.array_equal(smoothed_alarm(changed, n, k)[:150], smoothed_alarm(d, n, k)[:150])
    with pytest.raises(ValueError, match="1 <= k <= n"):
        smoothed_alarm(d, 3, 4)


def test_events_are_the_runs_of_the_label():
    assert events(np.array([0, 1, 1, 0, 0, 1, 0, 1])) == [(1, 3), (5, 6), (7, 8)]
    assert events(np.zeros(4)) == []


def test_latency_and_false_alarms_on_a_stream_with_known_onsets():
    rate = 10.0  # Hz
    y = np.zeros(1000, dtype=int)
    y[100:200] = 1  # an event from 10 s
    y[500:550] = 1  # and one from 50 s
    y[800:840] = 1  # and one the detector misses
    d = np.zeros(1000, dtype=int)
    d[115:200] = 1  # found 1.5 s after the onset ...
    d[505:560] = 1  # ... and 0.5 s after this one, the alarm lingering after its end (no new alarm)
    d[300] = 1  # a lone spurious decision: 1 of 5, no alarm under 3 of 5
    d[700:704] = 1  # a burst: one false alarm
    result = score_detection(y, d, rate, n=5, k=3)
    # the alarm rises at the third decision of each run: 2 samples after it starts
    assert result.latencies == [pytest.approx(1.7), pytest.approx(0.7), None]
    assert result.missed == 1 and result.false_alarms == 1
    assert result.hours_without_event == pytest.approx((1000 - 190) / rate / 3600)
    assert result.false_alarms_per_hour == pytest.approx(1 / ((1000 - 190) / rate / 3600))
    assert result.latency(0.5) == pytest.approx(1.2) and result.latency(0.9) == pytest.approx(1.6)
    assert "3 events, 1 missed" in result.describe()


def test_an_alarm_already_on_at_an_onset_detects_it_at_once_and_is_not_counted_again():
    y = np.array([0] * 10 + [1] * 10 + [0] * 10)
    d = np.array([0] * 6 + [1] * 14 + [0] * 10)  # on 4 samples early: a false alarm, then the event at once
    result = score_detection(y, d, 1.0, n=1, k=1)
    assert result.latencies == [0.0] and result.false_alarms == 1


def fake_bonn(path, per_set: int = 10, length: int = 50):
    """A zip laid out as the Bonn archive (A_Z/Z001.txt ... E_S/S010.txt): set E's samples are 1000 + i,
    the others' their set's index (+ 0.5 every other sample), so every sample tells where it came from."""
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for n, (s, folder) in enumerate(zip("ABCDE", ("A_Z", "B_O", "C_N", "D_F", "E_S"))):
            for i in range(per_set):
                value = 1000 + i if s == "E" else n
                z.writestr(f"{folder}/{folder[-1]}{i + 1:03d}.txt",
                           "\r\n".join(str(value + t % 2 / 2) for t in range(length)))
    return path


def test_bonn_streams_keep_held_out_recordings_apart_and_every_seizure_one_event(tmp_path):
    from rnnkit.data.streams import bonn_streams

    streams = bonn_streams(fake_bonn(tmp_path / "bonn.zip"), val=0.1, held_out=0.2)
    names = {split: set(s.names) for split, s in streams.items()}
    assert not names["train"] & names["test"] and not names["val"] & names["test"]
    assert not names["train"] & names["val"]
    assert sum(len(n) for n in names.values()) == 50
    test = streams["test"]
    assert sum(n.startswith("E_S") for n in test.names) == 2 and len(test.names) == 10  # 20 % of each set
    assert len(events(test.y)) == 2 and not test.names[0].startswith("E_S")
    assert np.array_equal(test.y == 1, test.x >= 1000)  # every sample labelled by its own segment
    for s in streams.values():
        assert all(not (a.startswith("E_S") and b.startswith("E_S")) for a, b in zip(s.names, s.names[1:]))
    streams["val"].write(tmp_path / "val.csv")
    rows = (tmp_path / "val.csv").read_text().splitlines()
    assert rows[0] == "eeg,label" and len(rows) == 1 + len(streams["val"].x)
