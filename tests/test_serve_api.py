"""`qaframe serve` end to end: a real server process with a tiny random KcBERT span model, called over HTTP.

Covers the API (predict, batch, health, long contexts), the limits (413/400/422 JSON errors),
the command's one-line errors, and the bounded load test of issue 9: 500 requests at
concurrency 16 with malformed ones mixed in, p50/p95 latency written to a JSON file.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from qaframe import cli as cli_module
from qaframe.io import write_json

CONTEXT = (
    "제주도는 한반도 남쪽 바다에 있는 대한민국에서 가장 큰 섬이다. "
    "섬 한가운데에는 높이 1,947미터의 한라산이 솟아 있는데, 남한에서 가장 높은 산이다."
)
QUESTION = "한라산의 높이는 얼마인가?"


def build_tiny_model(config_dir: Path, folder: Path) -> Path:
    """Save a span model with random weights from the packaged tiny KcBERT config, with its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(config_dir))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(config_dir).save_pretrained(folder)
    return folder


def assert_spans(context: str, answers: list[dict], top_k: int) -> None:
    """Each answer is the slice of the context it claims to be, scored 0-1, best first."""
    assert 1 <= len(answers) <= top_k
    for answer in answers:
        assert set(answer) == {"text", "score", "start", "end"}
        assert 0 <= answer["start"] < answer["end"] <= len(context)
        assert context[answer["start"] : answer["end"]] == answer["text"]
        assert 0.0 <= answer["score"] <= 1.0
    scores = [answer["score"] for answer in answers]
    assert scores == sorted(scores, reverse=True)


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return build_tiny_model(tiny_model_dir, tmp_path_factory.mktemp("tiny-span-model"))


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """`qaframe serve` in a subprocess on a free port of 127.0.0.1; yields its base URL."""
    log_path = tmp_path_factory.mktemp("serve-log") / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "qaframe.cli", "serve", "--model", str(model_dir), "--port", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            text = log_path.read_text(errors="replace")
            found = re.search(r"Serving \S+ on (http://127\.0\.0\.1:\d+)", text)
            if found:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"qaframe serve did not start (exit {process.poll()}):\n{text}")
            time.sleep(0.2)
        yield found.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "Application shutdown complete" in log_path.read_text(errors="replace")  # stopped gracefully on SIGTERM


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server, timeout=30) as http:
        yield http


def test_a_loopback_server_answers_only_to_loopback_names(client, server):
    port = server.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST"):
        assert client.get("/health", headers={"Host": host}).status_code == 200, host
    refused = client.get("/health", headers={"Host": f"attacker.example:{port}"})  # DNS rebinding: a page's own name
    assert refused.status_code == 400 and "is not this server's" in refused.json()["error"]


def test_head_answers_for_the_page_and_health(client):
    assert client.head("/health").status_code == 200 and client.head("/").status_code == 200


def test_host_names_lose_their_port():
    from qaframe.commands.serve import loopback_names
    from qaframe.serving import host_name

    assert [host_name(h) for h in ("[::1]:8000", "[::1]", "localhost:80", "127.0.0.1", "::1")] == ["::1", "::1", "localhost", "127.0.0.1", "::1"]
    assert loopback_names("127.0.0.2") == ["127.0.0.1", "127.0.0.2", "::1", "localhost"]
    assert loopback_names("0.0.0.0") is None and loopback_names("example.org") is None


def test_health_names_the_model(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and isinstance(body["model"], str) and body["model"]


def test_predict_returns_spans_of_the_context(client):
    response = client.post("/predict", json={"question": QUESTION, "context": CONTEXT, "top_k": 3})
    assert response.status_code == 200
    body = response.json()
    assert_spans(CONTEXT, body["answers"], 3)
    assert body["model"] == client.get("/health").json()["model"]
    assert body["elapsed_ms"] >= 0
    default = client.post("/predict", json={"question": QUESTION, "context": CONTEXT}).json()
    assert len(default["answers"]) == 1
    assert {k: default["answers"][0][k] for k in ("text", "start", "end")} == {k: body["answers"][0][k] for k in ("text", "start", "end")}


def test_long_context_spans_several_windows(client, model_dir):
    from transformers import AutoTokenizer

    sentences = [f"{n}번째 문단에서 마을 사람들은 {n * 7}그루의 나무를 심었고 강가에 작은 다리를 놓았다. " for n in range(1, 80)]
    context = "".join(sentences)
    tokens = len(AutoTokenizer.from_pretrained(model_dir)(context, verbose=False)["input_ids"])
    assert tokens > 3 * 300  # more than three windows of the model's 300 positions
    response = client.post("/predict", json={"question": "나무를 몇 그루 심었나?", "context": context, "top_k": 20})
    assert response.status_code == 200
    assert_spans(context, response.json()["answers"], 20)


def test_batch_answers_each_item_like_predict(client):
    other = "김장은 겨울 동안 먹을 김치를 늦가을에 한꺼번에 담그는 일이다. 이 문화는 2013년 유네스코 인류무형문화유산에 올랐다."
    items = [
        {"question": QUESTION, "context": CONTEXT, "top_k": 2},
        {"question": "김장은 언제 하나?", "context": other},
        {"question": "무엇이 유산에 올랐나?", "context": other, "top_k": 5},
    ]
    response = client.post("/predict/batch", json={"items": items})
    assert response.status_code == 200
    body = response.json()
    assert len(body["results"]) == 3 and body["model"] and body["elapsed_ms"] >= 0
    for item, result in zip(items, body["results"]):
        assert_spans(item["context"], result["answers"], item.get("top_k", 1))
        single = client.post("/predict", json=item).json()["answers"]
        assert [(a["start"], a["end"]) for a in single] == [(a["start"], a["end"]) for a in result["answers"]]
        assert [a["score"] for a in single] == pytest.approx([a["score"] for a in result["answers"]], abs=1e-4)


def test_page_is_served_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "문맥" in page and "Context" in page and "질문" in page and "Question" in page
    assert "http://" not in page and "https://" not in page  # nothing loaded from outside
    assert "innerHTML" not in page


ITEM = {"question": QUESTION, "context": CONTEXT}
CLIENT_MISTAKES = [
    ("empty question", "/predict", {**ITEM, "question": ""}, 422, "question: is empty"),
    ("whitespace context", "/predict", {**ITEM, "context": " \n\t "}, 422, "context: is empty"),
    # refused as `qaframe predict` refuses them (qaframe.text.unusable_text): no token covers these characters
    ("zero-width question", "/predict", {**ITEM, "question": "\u200b\u200b"}, 422, "question: is empty (or only spaces and invisible characters)"),
    ("BOM context", "/predict", {**ITEM, "context": "\ufeff"}, 422, "context: is empty (or only spaces and invisible characters)"),
    ("invisible-separator question", "/predict", {**ITEM, "question": "\u2063\u2063"}, 422, "question: is empty"),
    ("soft-hyphen context", "/predict", {**ITEM, "context": " \u00ad "}, 422, "context: is empty"),
    # U+FFFD passes that check, but BERT's normalizer removes it: no context token is left to answer with
    ("context without tokens", "/predict", {**ITEM, "context": "\ufffd\ufffd"}, 422, "context: has no tokens the model knows"),
    ("batch item without tokens", "/predict/batch", {"items": [ITEM, {**ITEM, "context": " \ufffd"}]}, 422,
     "items[1].context: has no tokens the model knows"),
    ("number as question", "/predict", {**ITEM, "question": 7}, 422, "question: Input should be a valid string"),
    ("list as context", "/predict", {**ITEM, "context": ["a"]}, 422, "context: Input should be a valid string"),
    ("top_k zero", "/predict", {**ITEM, "top_k": 0}, 422, "top_k: Input should be greater than or equal to 1"),
    ("top_k 21", "/predict", {**ITEM, "top_k": 21}, 422, "top_k: Input should be less than or equal to 20"),
    ("top_k as text", "/predict", {**ITEM, "top_k": "3"}, 422, "top_k: Input should be a valid integer"),
    ("top_k as bool", "/predict", {**ITEM, "top_k": True}, 422, "top_k: Input should be a valid integer"),
    ("missing context", "/predict", {"question": QUESTION}, 422, "context: Field required"),
    ("misspelled field", "/predict", {**ITEM, "topk": 3}, 422, "topk: Extra inputs are not permitted"),
    ("array body", "/predict", [ITEM], 422, "request body must be a JSON object"),
    ("context too long", "/predict", {**ITEM, "context": "가" * 20_001}, 422, "context: is 20,001 characters, the limit is 20,000"),
    ("question too long", "/predict", {**ITEM, "question": "나" * 1_001}, 422, "question: is 1,001 characters, the limit is 1,000"),
    ("empty batch", "/predict/batch", {"items": []}, 422, "items: must hold at least one question"),
    ("batch too big", "/predict/batch", {"items": [ITEM] * 33}, 422, "items: holds 33 questions, the limit is 32"),
    ("bad batch item", "/predict/batch", {"items": [ITEM, {**ITEM, "question": "  "}]}, 422, "items[1].question: is empty"),
    ("batch item wrong type", "/predict/batch", {"items": [ITEM, "text"]}, 422, "items[1]: Input should be a valid dictionary"),
    ("items not a list", "/predict/batch", {"items": ITEM}, 422, "items: Input should be a valid list"),
]


@pytest.mark.parametrize("path, payload, status, message", [case[1:] for case in CLIENT_MISTAKES], ids=[case[0] for case in CLIENT_MISTAKES])
def test_client_mistakes_get_json_errors(client, path, payload, status, message):
    response = client.post(path, json=payload)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


RAW_MISTAKES = [
    ("invalid JSON", b'{"question": "a", ', {"content-type": "application/json"}, 400, "request body is not valid JSON"),
    ("empty body", b"", {"content-type": "application/json"}, 422, "request body must be a JSON object"),
    ("form body", b"question=a&context=b", {"content-type": "application/x-www-form-urlencoded"}, 422, "request body must be a JSON object"),
    ("lone surrogate", b'{"question": "a\\ud800", "context": "b"}', {"content-type": "application/json"}, 422, "unpaired surrogate"),
    ("body over 1 MB", b"{" + b" " * 1_000_000 + b"}", {"content-type": "application/json"}, 413, "the limit is 1,000,000"),
]


@pytest.mark.parametrize("content, headers, status, message", [case[1:] for case in RAW_MISTAKES], ids=[case[0] for case in RAW_MISTAKES])
def test_malformed_bodies_get_json_errors(client, content, headers, status, message):
    response = client.post("/predict", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_streamed_body_over_the_limit_is_413_without_content_length(client):
    def chunks():
        for _ in range(20):
            yield b" " * 60_000

    response = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert "the limit is 1,000,000" in response.json()["error"]
    assert client.get("/health").status_code == 200


def test_unknown_routes_are_json_errors(client):
    assert client.get("/nowhere").json() == {"error": "Not Found"}
    response = client.get("/predict")
    assert response.status_code == 405 and response.json() == {"error": "Method Not Allowed"}


LOAD_MISTAKES = [
    ({"question": "", "context": CONTEXT}, 422),
    ({"question": QUESTION, "context": CONTEXT, "top_k": 50}, 422),
    ({"question": QUESTION}, 422),
    (b'{"question": ', 400),
    ({"items": []}, 422),
]


def test_load_500_requests_at_concurrency_16(server, tmp_path):
    """Issue 9: every valid request answered, every malformed one a 4xx, p50/p95 recorded, server still up."""
    contexts = [CONTEXT, CONTEXT * 4, "은행나무길 작은 도서관은 2019년 봄에 주민들이 빈 방앗간을 고쳐 문을 연 마을 도서관이다."]
    jobs = []
    for n in range(500):
        if n % 10 == 7:
            payload, expected = LOAD_MISTAKES[(n // 10) % len(LOAD_MISTAKES)]
            jobs.append(("bad", payload, expected))
        else:
            jobs.append(("good", {"question": QUESTION, "context": contexts[n % 3], "top_k": 1 + n % 3}, 200))

    async def send_all():
        queue: asyncio.Queue = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        outcomes = []
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        async with httpx.AsyncClient(base_url=server, timeout=60, limits=limits) as http:

            async def worker():
                while not queue.empty():
                    kind, payload, expected = queue.get_nowait()
                    if isinstance(payload, bytes):
                        request = http.post("/predict", content=payload, headers={"content-type": "application/json"})
                    else:
                        request = http.post("/predict/batch" if "items" in payload else "/predict", json=payload)
                    started = time.perf_counter()
                    try:
                        response = await request
                    except httpx.HTTPError as error:
                        outcomes.append((kind, payload, expected, None, repr(error), time.perf_counter() - started))
                        continue
                    outcomes.append((kind, payload, expected, response.status_code, response.json(), time.perf_counter() - started))

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(16)))
            return outcomes, time.perf_counter() - began

    outcomes, wall = asyncio.run(send_all())
    assert len(outcomes) == 500
    errors = [o for o in outcomes if o[0] == "good" and o[3] != 200]
    assert errors == []
    for kind, payload, expected, status, body, _ in outcomes:
        if kind == "good":
            assert_spans(payload["context"], body["answers"], payload["top_k"])
        else:
            assert status == expected and isinstance(body["error"], str)
    latencies = sorted(o[5] * 1000 for o in outcomes if o[0] == "good")
    percentiles = statistics.quantiles(latencies, n=100)
    report = {
        "requests": 500,
        "concurrency": 16,
        "valid": len(latencies),
        "malformed": 500 - len(latencies),
        "errors": len(errors),
        "p50_ms": round(percentiles[49], 1),
        "p95_ms": round(percentiles[94], 1),
        "max_ms": round(latencies[-1], 1),
        "wall_s": round(wall, 2),
        "requests_per_s": round(500 / wall, 1),
    }
    write_json(tmp_path / "serve_load.json", report)
    print(f"\nload test: {json.dumps(report)}\nwritten to {tmp_path / 'serve_load.json'}")
    health = httpx.get(f"{server}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"


def run_cli(monkeypatch, argv: list[str]) -> int:
    monkeypatch.setattr(sys, "argv", ["qaframe", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(argv)
    return exit_info.value.code


@pytest.mark.parametrize("missing", ["fastapi", "uvicorn"])
def test_serve_without_the_extra_says_what_to_install(monkeypatch, capsys, tmp_path, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` fail
    assert run_cli(monkeypatch, ["serve", "--model", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "Error: qaframe serve needs the serve extra: pip install 'qaframe[serve]'\n"


def test_serve_missing_model_folder_is_one_line(monkeypatch, capsys, tmp_path):
    assert run_cli(monkeypatch, ["serve", "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Error: --model ") and "no such folder" in err


def test_serve_folder_without_a_model_is_one_line(monkeypatch, capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    assert run_cli(monkeypatch, ["serve", "--model", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Error: ") and str(tmp_path) in err


def test_serve_port_in_use_is_one_line(monkeypatch, capsys, model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_cli(monkeypatch, ["serve", "--model", str(model_dir), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == f"Error: --host 127.0.0.1 --port {port}: cannot listen there (Address already in use); pick another --port or --host\n"


def test_serve_unknown_device_is_one_line(monkeypatch, capsys, model_dir):
    assert run_cli(monkeypatch, ["serve", "--model", str(model_dir), "--device", "gpu"]) == 2
    assert capsys.readouterr().err == "Error: --device gpu: not a device name; use cpu, cuda, cuda:N or mps\n"
