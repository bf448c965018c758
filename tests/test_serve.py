"""``rnnkit serve RUN``: a run's task over HTTP, driven by a real HTTP client
(``http.client``) against a server on a free port, in a thread of this
process or, where the process is the point (its printed URL, Ctrl-C), in a
subprocess; the page in headless Chromium where one is installed."""

import base64
import csv
import http.client
import io
import json
import math
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import CHROMIUM, browser_page, run_main

from rnnkit.cli.serve import make_server
from rnnkit.tasks.serving import Limits



@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_text, spam_table, chunk_corpus, tiny_lm_flags, tiny_labelled_flags):
    from test_ctc import random_texts, write_manifest

    folder = tmp_path_factory.mktemp("serve")
    (folder / "corpus.txt").write_text(make_text(150))
    (folder / "spam.csv").write_text(spam_table(60))
    (folder / "chunks.txt").write_text(chunk_corpus(40))
    words = sorted(set(make_text(80).split())) * 4
    (folder / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in words))
    wave = [round(math.sin(t / 3) + 0.1 * math.cos(t * 1.7), 4) for t in range(120)]
    (folder / "series.csv").write_text("value\n" + "".join(f"{v}\n" for v in wave))
    write_manifest(folder, "speech", random_texts(30, 0))
    commands = {"lm": ["corpus.txt", *tiny_lm_flags, "--max-steps", "20"],
                "conditioned": ["spam.csv", "--condition-column", "CLASS", "--hidden-size", "16", "--num-layers", "1",
                                "--embedding-dim", "8", "--batch-size", "8", "--max-steps", "6", "--device", "cpu"],
                "ctc": ["speech.tsv", "--task", "ctc", "--mel-bands", "8", "--hidden-size", "16", "--num-layers", "1",
                        "--batch-size", "8", "--device", "cpu", "--max-steps", "4"],
                "forecast": ["series.csv", "--task", "forecast", "--hidden-size", "16", "--batch-size", "16",
                             "--seq-len", "12", "--device", "cpu", "--precision", "fp32", "--max-steps", "4"],
                "classify": ["spam.csv", "--task", "classify", *tiny_labelled_flags, "--max-steps", "6"],
                "tag": ["chunks.txt", "--task", "tag", *tiny_labelled_flags, "--max-steps", "6"],
                "seq2seq": ["pairs.tsv", "--task", "seq2seq", "--tokenizer", "char", "--target-tokenizer", "char",
                            *tiny_labelled_flags, "--max-steps", "6"]}
    for name, command in commands.items():
        done = run_main("train", folder / command[0], *command[1:], "--out", folder / name)
        assert done.returncode == 0, done.stderr
    return folder


class Serving:
    """A server of ``run`` on a free port in a thread; ``post``/``get`` are one request each."""

    def __init__(self, run, limits=Limits(), **settings):
        self.server = make_server(str(run), port=0, limits=limits, **settings)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def request(self, method, path, body=None, headers=None):
        """(status, parsed JSON or text) of one request; ``body`` a dict is sent as JSON, bytes as is."""
        connection = self.connection()
        data = json.dumps(body).encode() if isinstance(body, (dict, list, str, int)) else body
        connection.request(method, path, data, headers or {"Content-Type": "application/json"})
        response = connection.getresponse()
        text = response.read().decode()
        connection.close()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(text) if kind == "application/json" else text

    def post(self, name, body):
        return self.request("POST", f"/api/{name}", body)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def lm(runs):
    serving = Serving(runs / "lm")
    yield serving
    serving.close()


def stream(serving, body) -> list[dict]:
    """The objects of a streamed reply, each read as it arrives (one JSON object a line)."""
    connection = serving.connection()
    connection.request("POST", "/api/sample", json.dumps(body).encode(), {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200, response.read()
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("Content-Type") == "application/x-ndjson"
    pieces = [json.loads(line) for line in response]
    connection.close()
    return pieces


def test_the_api_lists_the_task_s_endpoints_and_their_fields(lm):
    status, about = lm.request("GET", "/api")
    assert status == 200 and about["task"] == "lm"
    assert set(about["endpoints"]) == {"sample", "surprisal"}
    assert about["endpoints"]["sample"]["stream"] is True
    assert about["endpoints"]["surprisal"]["fields"]["text"]["required"] is True


def test_a_streamed_sample_comes_in_pieces_and_equals_rnnkit_sample_with_the_seed(lm, runs, cli_here):
    pieces = stream(lm, {"prime": "the ", "sample_length": 40, "seed": 11, "temperature": 1.0})
    assert pieces[-1] == {"done": True}
    texts = [p["text"] for p in pieces[:-1]]
    assert texts[0] == "the " and len(texts) == 41  # the prime, then one piece a character token
    expected = cli_here("sample", runs / "lm", "--prime", "the ", "--sample-length", 40, "--seed", 11,
                        "--temperature", 1.0)
    assert expected.returncode == 0, expected.stderr
    assert "".join(texts) + "\n" == expected.stdout
    other = stream(lm, {"prime": "the ", "sample_length": 40, "seed": 12, "temperature": 1.0})
    assert "".join(p["text"] for p in other[:-1]) != "".join(texts)  # the seed matters


def test_a_conditioned_model_samples_a_text_of_the_label_asked_for_as_rnnkit_sample(runs, cli_here):
    server = Serving(runs / "conditioned")
    try:
        about = server.request("GET", "/api")[1]
        assert set(about["endpoints"]) == {"sample"}  # texts of a table are scored whole, not as a stream
        assert about["endpoints"]["sample"]["fields"]["condition"]["required"] is True
        status, reply = server.post("sample", {"condition": "2"})
        assert status == 422 and "one of 0, 1" in reply["error"], reply
        pieces = stream(server, {"condition": "1", "seed": 4, "sample_length": 60})
    finally:
        server.close()
    expected = cli_here("sample", runs / "conditioned", "--condition", "1", "--seed", 4, "--sample-length", 60)
    assert expected.returncode == 0, expected.stderr
    assert "".join(p["text"] for p in pieces[:-1]) + "\n" == expected.stdout and pieces[-1] == {"done": True}


def test_surprisal_is_each_token_s_bits_and_its_mean_is_rnnkit_eval_s_loss(lm, runs, cli_here, tmp_path):
    text = "the cat sat on the mat and the dog ran\nthe end"
    status, reply = lm.post("surprisal", {"text": text})
    assert status == 200, reply
    assert "".join(reply["tokens"]) == text and reply["bits"][0] is None
    assert len(reply["bits"]) == len(text) and all(b >= 0 for b in reply["bits"][1:])
    (tmp_path / "text.txt").write_text(text)
    scored = cli_here("eval", runs / "lm", tmp_path / "text.txt", "--json")
    assert scored.returncode == 0, scored.stderr
    loss = json.loads(scored.stdout)["loss"]
    assert reply["loss"] == pytest.approx(loss, rel=1e-5)
    assert reply["bits_per_token"] == pytest.approx(loss / math.log(2), rel=1e-5)
    assert sum(reply["bits"][1:]) / (len(text) - 1) == pytest.approx(reply["bits_per_token"], rel=1e-6)


@pytest.mark.parametrize("path, body, status, message", [
    ("sample", {"prime": 3}, 400, "'prime' must be str, got int"),
    ("sample", {"sample_length": "10"}, 400, "'sample_length' must be int"),
    ("sample", {"sample_length": True}, 400, "'sample_length' must be int, got bool"),
    ("sample", {"sample_length": 10 ** 6}, 400, "'sample_length' must be between 1 and 1000"),
    ("sample", {"temperature": -1}, 400, "'temperature' must be between 0 and 100"),
    ("sample", {"tempreature": 1}, 400, "unknown field 'tempreature'"),
    ("sample", {"prime_file": "/etc/passwd"}, 400, "unknown field 'prime_file'"),
    ("sample", [1, 2], 400, "must be a JSON object, got list"),
    ("sample", {"prime": "\u2603 snowman"}, 422, "the prime text"),
    ("surprisal", {}, 400, "'text' is required"),
    ("surprisal", {"text": "x" * 20_001}, 413, "the limit is 20,000"),
    ("surprisal", {"text": "t"}, 422, "fewer than 2 tokens"),
    ("nothing", {}, 404, "no endpoint /api/nothing"),
])
def test_bad_requests_get_a_4xx_with_a_one_line_reason(lm, path, body, status, message):
    got, reply = lm.post(path, body)
    assert got == status, reply
    assert message in reply["error"] and "\n" not in reply["error"]


def test_bodies_that_are_not_json_or_too_large_are_refused(runs):
    serving = Serving(runs / "lm", max_body=200)
    try:
        status, reply = serving.post("surprisal", b"{not json")
        assert status == 400 and "not JSON" in reply["error"]
        status, reply = serving.post("surprisal", {"text": "the " * 100})
        assert status == 413 and "the limit is 200" in reply["error"]
        status, reply = serving.request("GET", "/nowhere")
        assert status == 404
        status, reply = serving.request("PUT", "/api/surprisal", {"text": "the"})
        assert status == 405 and "PUT is not served" in reply["error"]
        status, reply = serving.request("POST", "/api/surprisal", b"{}", {"Content-Length": "-5"})
        assert status == 400 and "Content-Length must be >= 0" in reply["error"]
    finally:
        serving.close()


def test_a_client_that_stalls_in_its_body_gets_408_and_frees_its_thread(runs):
    serving = Serving(runs / "lm")
    serving.server.request_timeout = 0.3
    try:
        with socket.create_connection(("127.0.0.1", serving.port), timeout=10) as client:
            client.sendall(b"POST /api/surprisal HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"te")
            reply = b"".join(iter(lambda: client.recv(4096), b"")).decode()  # until the server closes it
        assert reply.startswith("HTTP/1.1 408") and "did not arrive within 0.3 s" in reply, reply
        assert serving.post("surprisal", {"text": "the cat"})[0] == 200
    finally:
        serving.close()


def test_requests_beyond_max_concurrent_wait_then_get_503(runs):
    serving = Serving(runs / "lm", max_concurrent=1, wait=0.2)
    try:
        serving.server.places.acquire()  # one request is running
        status, reply = serving.post("surprisal", {"text": "the cat"})
        assert status == 503 and "busy" in reply["error"]
        threading.Timer(0.05, serving.server.places.release).start()  # it ends while the next waits
        status, reply = serving.post("surprisal", {"text": "the cat"})
        assert status == 200, reply
    finally:
        serving.close()


def test_two_samples_at_once_are_each_their_seed_s(lm):
    alone = stream(lm, {"prime": "a", "sample_length": 60, "seed": 5})
    results = [None, None]

    def one(k):
        results[k] = stream(lm, {"prime": "a", "sample_length": 60, "seed": 5})

    threads = [threading.Thread(target=one, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == alone and results[1] == alone


def test_the_page_is_served_self_contained(lm):
    status, page = lm.request("GET", "/")
    assert status == 200 and "<script>" in page
    assert "http://" not in page and "https://" not in page and "src=" not in page


def serving(run, body_name, body, endpoint):
    server = Serving(run)
    try:
        return server.post(endpoint, {body_name: body})
    finally:
        server.close()


def test_classify_s_labels_are_rnnkit_predict_s(runs, cli_here, tmp_path):
    texts = ["check my channel now", "nice song", "the cat check the song", "my channel please check"]
    status, reply = serving(runs / "classify", "texts", texts, "predict")
    assert status == 200, reply
    (tmp_path / "in.csv").write_text("CONTENT\n" + "".join(f'"{t}"\n' for t in texts))
    done = cli_here("predict", runs / "classify", tmp_path / "in.csv")
    assert done.returncode == 0, done.stderr
    expected = [row[-1] for row in csv.reader(io.StringIO(done.stdout))][1:]
    assert reply["labels"] == expected and set(expected) <= {"0", "1"}


def test_tag_s_tags_are_rnnkit_predict_s_a_word_each(runs, cli_here, tmp_path):
    sentences = ["the cat sees the dog", "the dog  runs"]
    status, reply = serving(runs / "tag", "sentences", sentences, "tag")
    assert status == 200, reply
    assert reply["words"] == [s.split() for s in sentences] and [len(t) for t in reply["labels"]] == [5, 3]
    (tmp_path / "in.txt").write_text("\n\n".join("\n".join(s.split()) for s in sentences) + "\n")
    done = cli_here("predict", runs / "tag", tmp_path / "in.txt")
    assert done.returncode == 0, done.stderr
    tags = [line.split()[-1] for line in done.stdout.splitlines() if line.strip()]
    assert [t for sentence in reply["labels"] for t in sentence] == tags


def test_seq2seq_s_outputs_are_rnnkit_predict_s(runs, cli_here, tmp_path):
    sources = ["the", "cat", "song"]
    status, reply = serving(runs / "seq2seq", "sources", sources, "translate")
    assert status == 200, reply
    (tmp_path / "in.txt").write_text("\n".join(sources) + "\n")
    done = cli_here("predict", runs / "seq2seq", tmp_path / "in.txt")
    assert done.returncode == 0, done.stderr
    assert reply["outputs"] == [line.split("\t")[1] for line in done.stdout.splitlines()]
    assert all(score <= 0 for score in reply["scores"])


def test_a_forecast_is_rnnkit_predict_s(runs, cli_here):
    wave = [float(v) for v in (runs / "series.csv").read_text().split()[1:]]
    status, reply = serving(runs / "forecast", "values", wave, "forecast")
    assert status == 200, reply
    assert reply["channels"] == ["value"] and len(reply["forecast"]) == 1
    server = Serving(runs / "forecast")
    try:
        status, reply = server.post("forecast", {"values": [[v] for v in wave], "horizon": 4})
    finally:
        server.close()
    done = cli_here("predict", runs / "forecast", runs / "series.csv", "--horizon", 4)
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0][0] == "value" and len(rows) == 1 + len(wave) + 4
    # the CLI writes 6 significant digits: a column a quantile after the point forecast
    np.testing.assert_allclose(np.array(reply["forecast"])[:, 0], [float(r[0]) for r in rows[-4:]], rtol=1e-5)
    assert len(reply["quantiles"]) == len(rows[0]) - 1
    for column, q in enumerate(reply["quantiles"], start=1):
        np.testing.assert_allclose(np.array(reply["quantiles"][q])[:, 0], [float(r[column]) for r in rows[-4:]],
                                   rtol=1e-5)


def test_a_wav_s_transcript_is_rnnkit_predict_s(runs, cli_here):
    wav = runs / "speech" / "0003.wav"
    server = Serving(runs / "ctc")
    try:
        status, reply = server.post("transcribe", {"wav": base64.b64encode(wav.read_bytes()).decode()})
        beam = server.post("transcribe", {"wav": base64.b64encode(wav.read_bytes()).decode(), "beam_size": 4})
    finally:
        server.close()
    assert status == 200, reply
    done = cli_here("predict", runs / "ctc", wav)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{wav}\t{reply['transcript']}\n"
    assert beam[0] == 200 and isinstance(beam[1]["transcript"], str)


def test_a_wav_at_another_rate_gets_a_422_saying_the_fix(runs, tmp_path):
    from rnnkit.data.audio import write_wav

    write_wav(tmp_path / "fast.wav", np.zeros(800, dtype=np.float32), 44100)
    wav = base64.b64encode((tmp_path / "fast.wav").read_bytes()).decode()
    server = Serving(runs / "ctc")
    try:
        status, reply = server.post("transcribe", {"wav": wav})
    finally:
        server.close()
    assert status == 422 and reply["error"].startswith("'wav' is 44100 Hz but the model reads 8000 Hz"), reply
    assert str(tmp_path) not in reply["error"] and "tmp" not in reply["error"]


@pytest.mark.parametrize("task, endpoint, body, status, message", [
    ("ctc", "transcribe", {"wav": "not base64!"}, 400, "'wav' is not base64"),
    ("ctc", "transcribe", {"wav": base64.b64encode(b"RIFF and then nothing").decode()}, 422,
     "'wav' is not a PCM wav file"),
    ("ctc", "transcribe", {"wav": "/etc/passwd"}, 400, "not base64"),
    ("forecast", "forecast", {"values": [1.0] * 5}, 422, "fewer than one window"),
    ("forecast", "forecast", {"values": [[1.0, 2.0]] * 20}, 400, "rows of 1 numbers"),
    ("forecast", "forecast", {"values": ["1"] * 20}, 400, "rows of 1 numbers"),
    ("forecast", "forecast", {"values": [1.0] * 20, "horizon": 500}, 422, "longer than the training part"),
    ("classify", "predict", {"texts": "one text"}, 400, "'texts' must be list[str], got str"),
    ("classify", "predict", {"texts": [1]}, 400, "'texts' must be a list of strings"),
    ("classify", "predict", {"texts": []}, 400, "'texts' must hold at least 1"),
    ("classify", "predict", {"texts": ["a"] * 65}, 413, "'texts' holds 65 items; the limit is 64"),
    ("classify", "predict", {"texts": ["ok", " "]}, 400, "texts[1] is empty"),
    ("tag", "tag", {"sentences": ["x" * 20_001]}, 413, "sentences[0] holds 20,001 characters"),
    ("seq2seq", "translate", {"sources": ["cat"], "beam_size": 0}, 400, "'beam_size' must be between 1 and 16"),
    ("seq2seq", "translate", {"sources": ["\u2603"]}, 422, "sources[0]"),
])
def test_bad_labelling_requests_get_a_4xx(runs, task, endpoint, body, status, message):
    server = Serving(runs / task)
    try:
        got, reply = server.post(endpoint, body)
    finally:
        server.close()
    assert got == status and message in reply["error"], reply


def test_bad_serve_flags_get_one_line(runs, cli_here, user_error, make_text, tmp_path):
    user_error(cli_here("serve", runs / "lm", "--max-concurrent", 0), "--max-concurrent must be >= 1")
    user_error(cli_here("serve", runs / "lm", "--port", 70000), "--port in 0..65535")
    user_error(cli_here("serve", tmp_path / "missing"), "missing")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        user_error(cli_here("serve", runs / "lm", "--port", port), f"cannot listen on 127.0.0.1:{port}")


# `python -m rnnkit`, with a line written by an atexit hook: it runs only on the interpreter's own exit
# (not after os._exit, nor after an abort)
SERVE_WITH_EXIT_MARK = ("import atexit, sys; from rnnkit.cli.main import main; "
                        "atexit.register(lambda: print('interpreter exit', file=sys.stderr)); sys.exit(main())")
# the thread that accepts connections held for 2 s after it starts each connection's thread, as a loaded machine
# held it (its next time slice came after the stream's first pieces had gone out): the Ctrl-C then came while it
# was inside socketserver's request handling, whose clean-up closed the stream's connection under its thread
SLOW_ACCEPT = ("import time; from rnnkit.cli import serve; start = serve.Server.process_request; "
               "serve.Server.process_request = lambda self, *a: (start(self, *a), time.sleep(2))[0]; ")


@pytest.mark.slow
@pytest.mark.parametrize("accept", ["prompt", "slow"])
def test_the_process_prints_its_url_and_ctrl_c_cuts_a_stream_and_exits_130_through_the_interpreter(runs, accept):
    """Ctrl-C while one connection streams and another, its request done, waits for its next one
    (keep-alive): the threads that ran the model in torch end before the interpreter does, which
    then exits with 130 by its own path (atexit hooks run), without the C++ runtime's abort
    ("terminate called without an active exception") that a thread still in torch at finalization
    brought. ``slow``: the Ctrl-C comes while the server is still starting the stream's connection."""
    ctrl_c_during_a_stream(runs, (SLOW_ACCEPT if accept == "slow" else "") + SERVE_WITH_EXIT_MARK)


def _default_ctrl_c():
    """In the served process before it starts: Ctrl-C at its default, as a terminal gives it. A process that
    inherits an ignored SIGINT never raises KeyboardInterrupt: in fresh-clone suite runs the served process went
    on serving after the SIGINT (seen 2026-12-07). No test of the suite leaves SIGINT changed or ignored (a probe
    after every test, NOTEBOOK.md): where the served process got it from is not known."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ctrl_c_during_a_stream(runs, script: str) -> None:
    """The scenario of the test above, in a process that runs ``script`` (``rnnkit`` with its arguments)."""
    process = subprocess.Popen([sys.executable, "-c", script, "serve", str(runs / "lm"), "--port", "0",
                                "--max-length", "1000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_default_ctrl_c)
    try:
        line = process.stdout.readline()
        assert line.startswith(f"serving {runs / 'lm'} (lm) at http://127.0.0.1:"), line + process.stderr.read()
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        idle.request("POST", "/api/sample", json.dumps({"sample_length": 30, "seed": 2}).encode())
        done = [json.loads(line) for line in idle.getresponse()]
        assert done[-1] == {"done": True}  # and the connection stays open, its thread waiting
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/api/sample", json.dumps({"sample_length": 1000000, "seed": 1}).encode())
        response = connection.getresponse()
        assert response.status == 200
        first = [json.loads(response.readline()) for _ in range(5)]  # it is generating
        assert all("text" in piece for piece in first)
        process.send_signal(signal.SIGINT)
        rest = [json.loads(line) for line in response]
        code = process.wait(timeout=30)
        stderr = process.stderr.read()
        # a connection closed between two chunks ends http.client's reading as if the stream were whole
        assert rest[-1:] == [{"error": "the server is stopping"}] and len(rest) < 1000000, \
            f"the stream ended with {rest[-1:]} after {len(rest)} more pieces; exit {code}; stderr {stderr!r}"
        assert code == 130
        assert "terminate called" not in stderr and "Aborted" not in stderr
        assert stderr.strip().splitlines() == ["interrupted", "interpreter exit"]
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium)")
def test_the_page_in_a_real_browser_streams_a_sample_colours_surprisal_and_labels(lm, runs, tmp_path):
    expected = "".join(p.get("text", "") for p in stream(lm, {"prime": "the ", "sample_length": 300, "seed": 3}))
    classify, ctc = Serving(runs / "classify"), Serving(runs / "ctc")
    wav = base64.b64encode((runs / "speech" / "0003.wav").read_bytes()).decode()
    transcript = ctc.post("transcribe", {"wav": wav})[1]
    served = (f"http://127.0.0.1:{lm.port}/", f"http://127.0.0.1:{classify.port}/", f"http://127.0.0.1:{ctc.port}/")
    try:
        with browser_page(lambda url: url.startswith(served)) as (page, problems):  # nothing from elsewhere
            page.goto(f"http://127.0.0.1:{lm.port}/")
            page.wait_for_selector("#sample-prime")
            # the observer is called once for the changes of one task, so once a read of the stream: a text
            # that came whole would call it once (how many reads a streamed one takes depends on how fast the
            # browser reads: 5 of 300 characters in a fresh-clone CI run, so more than one is what is asked)
            page.evaluate("""() => { window.changes = 0; new MutationObserver(() => window.changes++).observe(
                document.getElementById('sample-out'), {childList: true, characterData: true, subtree: true}); }""")
            page.fill("#sample-prime", "the ")
            page.fill("#sample-sample_length", "300")
            page.fill("#sample-seed", "3")
            page.fill("#sample-temperature", "0.8")
            page.click("#sample-send")
            page.wait_for_function(f"document.getElementById('sample-out').textContent.length >= {len(expected)}")
            assert page.text_content("#sample-out") == expected
            assert page.evaluate("window.changes") > 1
            page.fill("#surprisal-text", "the cat sat on the mat")
            page.click("#surprisal-send")
            page.wait_for_selector("#surprisal-out span.token")
            spans = page.locator("#surprisal-out span.token")
            assert spans.count() == len("the cat sat on the mat")
            colours = {spans.nth(k).evaluate("s => s.style.background") for k in range(spans.count())}
            assert len(colours) > 3  # coloured by each token's surprisal, not all alike
            assert "bits per token" in page.text_content("#surprisal-out")
            page.screenshot(path=str(tmp_path / "lm.png"), full_page=True)
            page.goto(f"http://127.0.0.1:{classify.port}/")
            page.fill("#predict-texts", "check my channel now\nnice song")
            page.click("#predict-send")
            page.wait_for_function("document.getElementById('predict-out').textContent.includes('labels')")
            assert len(json.loads(page.text_content("#predict-out"))["labels"]) == 2
            page.goto(f"http://127.0.0.1:{ctc.port}/")
            page.set_input_files("#transcribe-wav", str(runs / "speech" / "0003.wav"))
            page.click("#transcribe-send")
            page.wait_for_function("document.getElementById('transcribe-out').textContent.includes('transcript')")
            assert json.loads(page.text_content("#transcribe-out")) == transcript
            assert not problems, problems
    finally:
        classify.close()
        ctc.close()
