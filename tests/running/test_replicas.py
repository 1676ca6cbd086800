"""A provider's replicas against real HTTP servers on 127.0.0.1 (and a port nobody listens
on), through the real openai SDK: routing, health, the cache, resume and secrets."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from pathlib import Path

import pytest
from rich.console import Console

from promptkit.errors import ConfigError
from promptkit.profiling.workload import replica_targets
from promptkit.redact import forget_secrets
from promptkit.reporting.console import print_leaderboard
from promptkit.reporting.outputs import write_output
from promptkit.reporting.summary import summarize
from promptkit.running.budget import Budget
from promptkit.running.client import EndpointClient
from promptkit.running.plan import plan_eval
from promptkit.running.replicas import ReplicaSet, served_by_replicas
from promptkit.running.runner import RunOptions, run_eval
from promptkit.running.spec import Provider, load_spec
from promptkit.running.storage import RunStore
from promptkit.testing import FakeEndpoint, Reply

REPO = Path(__file__).parents[2]
BODY = {"model": "m", "messages": [{"role": "user", "content": "Say hi"}]}
CHAT = "/v1/chat/completions"


def dead_url() -> str:
    """The URL of a port nothing listens on: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def asked(endpoint: FakeEndpoint) -> int:
    return sum(request.path == CHAT for request in endpoint.requests)


def replica_set(urls: list[str], **settings) -> ReplicaSet:
    fields = {"id": "fake", "base_url": urls, "model": "m", "stream": False, "timeout": 5,
              **settings}
    cool_down = fields.pop("cool_down", 30.0)
    provider = Provider(**fields)
    return ReplicaSet(provider, [EndpointClient(provider, url, "unused") for url in urls],
                      cool_down=cool_down)


async def ask(replicas: ReplicaSet, times: int, workers: int = 1) -> list:
    """``times`` requests sent by ``workers`` concurrent workers; the outcomes, in the
    order they ended."""
    outcomes: list = []
    numbers = iter(range(times))  # shared: each worker takes the next

    async def worker() -> None:
        for _ in numbers:
            outcomes.append(await replicas.request(dict(BODY)))

    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        await close(replicas)
    return outcomes


async def close(replicas: ReplicaSet) -> None:
    for replica in replicas.replicas:
        await replica.client.client.close()


def test_two_healthy_replicas_share_the_load() -> None:
    with FakeEndpoint(default=Reply.text("hi", latency=0.2)) as a, \
            FakeEndpoint(default=Reply.text("hi", latency=0.2)) as b:
        replicas = replica_set([a.base_url, b.base_url])
        outcomes = asyncio.run(ask(replicas, 8, workers=8))
        assert all(o.completion.text == "hi" for o in outcomes)
        assert (asked(a), asked(b)) == (4, 4)  # least loaded, ties in turn
        assert replicas.served == {a.base_url: 4, b.base_url: 4}
        one_by_one = replica_set([a.base_url, b.base_url])
        asyncio.run(ask(one_by_one, 4))
        assert one_by_one.served == {a.base_url: 2, b.base_url: 2}


def test_least_loaded_routing_sends_more_to_the_faster_replica() -> None:
    with FakeEndpoint(default=Reply.text("slow", latency=0.5)) as slow, \
            FakeEndpoint(default=Reply.text("fast", latency=0.02)) as fast:
        replicas = replica_set([slow.base_url, fast.base_url])
        outcomes = asyncio.run(ask(replicas, 12, workers=2))
        assert len(outcomes) == 12 and all(o.completion for o in outcomes)
        served = replicas.served
        assert served[slow.base_url] >= 1 and served[fast.base_url] >= 3 * served[slow.base_url]


def test_a_dead_replica_is_routed_around_without_spending_retries() -> None:
    dead = dead_url()
    with FakeEndpoint(default=Reply.text("alive")) as live:
        replicas = replica_set([dead, live.base_url], retries=0)
        outcomes = asyncio.run(ask(replicas, 6))
        assert [o.completion.text for o in outcomes] == ["alive"] * 6
        assert outcomes[0].attempts == 2  # the dead one, then the live one at once
        assert all(o.attempts == 1 for o in outcomes[1:])  # the dead one is out
        assert replicas.served == {dead: 0, live.base_url: 6}
        assert list(replicas.down()) == [dead] and "connection" in replicas.down()[dead]
        assert replicas.unreachable is None and asked(live) == 6


def test_a_replica_failing_with_500s_is_taken_out_and_its_requests_answered_by_the_other(
        ) -> None:
    with FakeEndpoint(default=Reply.status(500)) as failing, \
            FakeEndpoint(default=Reply.text("ok")) as healthy:
        replicas = replica_set([failing.base_url, healthy.base_url], retries=2)
        outcomes = asyncio.run(ask(replicas, 10))
        assert [o.completion.text for o in outcomes] == ["ok"] * 10
        assert asked(failing) == 3  # three failures in a row take it out
        assert [o.attempts for o in outcomes[:3]] == [2, 2, 2]
        assert replicas.served == {failing.base_url: 0, healthy.base_url: 10}
        assert "HTTP 500" in replicas.down()[failing.base_url]


def test_a_replica_taken_out_is_tried_again_after_its_cool_down() -> None:
    with FakeEndpoint() as flaky, FakeEndpoint(default=Reply.text("ok")) as healthy:
        flaky.script(*[Reply.status(503)] * 3)  # then it echoes, as a fake does
        replicas = replica_set([flaky.base_url, healthy.base_url], cool_down=0.3)

        async def scenario() -> None:
            try:
                for _ in range(3):
                    assert (await replicas.request(dict(BODY))).completion.text == "ok"
                assert flaky.base_url in replicas.down()
                await asyncio.sleep(0.4)
                for _ in range(4):
                    assert (await replicas.request(dict(BODY))).completion is not None
            finally:
                await close(replicas)

        asyncio.run(scenario())
        assert replicas.served[flaky.base_url] >= 1 and not replicas.down()


def test_every_replica_dead_is_unreachable_as_one_endpoint_is() -> None:
    urls = [dead_url(), dead_url()]
    replicas = replica_set(urls, retries=1)
    first, second = asyncio.run(ask(replicas, 2))
    assert first.completion is None and first.error_kind == "connection"
    assert replicas.unreachable.startswith(f"every replica unreachable ({urls[0]}, {urls[1]})")
    assert second.attempts == 0 and second.error == replicas.unreachable


# -- runs ---------------------------------------------------------------------------------

SPEC = """\
templates: templates
prompts:
  - summarize@1
providers:
  - id: fake
    base_url: {urls}
    model: m
    stream: false
    concurrency: 2
    retries: 0
dataset: data.jsonl
assert:
  - type: icontains
    value: "{{{{ keyword }}}}"
"""


def make_eval(tmp_path: Path, urls: list[str], cases: int = 4) -> Path:
    shutil.copytree(REPO / "templates", tmp_path / "templates", dirs_exist_ok=True)
    with (tmp_path / "data.jsonl").open("w") as handle:
        for i in range(cases):
            handle.write(json.dumps({"id": f"c{i}", "article": f"Article {i} about keyword{i}.",
                                     "keyword": f"keyword{i}"}) + "\n")
    return write_spec(tmp_path, urls)


def write_spec(tmp_path: Path, urls: list[str]) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text(SPEC.format(urls=json.dumps(urls)))
    return path


def run(path: Path, **options):
    outcome = asyncio.run(run_eval(plan_eval(load_spec(path)), RunOptions(**options)))
    return outcome, list(outcome.results())


def test_a_run_with_one_dead_replica_of_two_answers_every_case(tmp_path: Path) -> None:
    with FakeEndpoint() as live:  # echoes the prompt, which holds the keyword
        outcome, results = run(make_eval(tmp_path, [dead_url(), live.base_url]))
        assert outcome.run.status == "finished" and not outcome.unreachable
        assert len(results) == 4 and all(r.error is None and r.passed for r in results)
        assert asked(live) == 4


def test_adding_a_replica_keeps_the_cache_and_the_spec_hash(tmp_path: Path) -> None:
    with FakeEndpoint() as a, FakeEndpoint() as b, FakeEndpoint() as c:
        path = make_eval(tmp_path, [a.base_url, b.base_url])
        before = load_spec(path).spec_hash()
        run(path)
        assert asked(a) + asked(b) == 4
        write_spec(tmp_path, [c.base_url, b.base_url, a.base_url])
        assert load_spec(path).spec_hash() == before
        _, results = run(path)
        assert all(r.cached and r.passed for r in results) and len(results) == 4
        assert asked(a) + asked(b) + asked(c) == 4
        single = load_spec(write_spec(tmp_path, [a.base_url])).spec_hash()
        path.write_text(path.read_text().replace(json.dumps([a.base_url]), a.base_url))
        assert load_spec(path).spec_hash() != single  # one URL is part of the identity


def test_resume_continues_after_a_replica_is_added(tmp_path: Path) -> None:
    with FakeEndpoint() as a, FakeEndpoint() as b:
        path = make_eval(tmp_path, [a.base_url])
        first, results = run(path, budget=Budget(max_requests=2), use_cache=False)
        assert first.run.status == "interrupted" and len(results) == 2
        write_spec(tmp_path, [a.base_url, b.base_url])
        again, results = run(path, resume=True, use_cache=False)
        assert again.run.run_id == first.run.run_id and again.run.status == "finished"
        assert len(results) == 4 and asked(a) + asked(b) == 4


@pytest.mark.parametrize(("urls", "message"), [
    (["http://127.0.0.1:1/v1", "ftp://127.0.0.1/v1"],
     "base_url[1] must start with http:// or https://"),
    (["http://127.0.0.1:1/v1", "http://127.0.0.1:1/v1/"], "base_url lists "),
    (["http://u:hunter2pw@127.0.0.1:1/v1", "http://127.0.0.1:1/v1"], "twice"),
    ([], "base_url is an empty list"),
    (["http://u:hunter2pw@127.0.0.1:1/v1", "http://u:hunter2pw@h:99999/v1"],
     "base_url[1] 'http://h:99999/v1' is not a valid URL"),
])
def test_a_bad_replica_list_is_a_one_line_error_naming_the_key(
        tmp_path: Path, urls: list[str], message: str) -> None:
    path = make_eval(tmp_path, urls)
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    text = str(caught.value)
    assert message in text and "providers[0]" in text
    assert "\n" not in text and "hunter2pw" not in text


def test_keys_and_userinfo_never_reach_outputs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("REPLICA_KEY", "sk-canary0123456789abcdefCANARY")
    with FakeEndpoint() as a, FakeEndpoint() as b:
        with_password = [a.base_url.replace("//", "//user:s3cretpw0rd@"), dead_url()]
        path = make_eval(tmp_path, with_password)
        text = path.read_text().replace("    retries: 0\n", "    retries: 0\n  - id: keyed\n"
                                        f"    base_url: {json.dumps([dead_url(), b.base_url])}\n"
                                        "    model: m2\n    stream: false\n"
                                        "    api_key_env: REPLICA_KEY\n")
        path.write_text(text)
        outcome, results = run(path)
        assert all(r.passed for r in results) and len(results) == 8
        assert b.requests[0].headers["authorization"] == "Bearer sk-canary0123456789abcdefCANARY"
        with RunStore(outcome.store_path) as store:
            stored = store.get_run(outcome.run.run_id).config["providers"][0]["base_url"]
        assert stored == [a.base_url, with_password[1]]
        summary = summarize(outcome.results())
        for name in ("report.json", "report.jsonl", "report.csv", "report.html", "report.md"):
            write_output(tmp_path / name, summary, outcome.results(), outcome.run)
        written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "eval.yaml"]
        assert any(p.suffix == ".db" for p in written)
        for file in written:
            data = file.read_bytes()
            assert b"s3cretpw0rd" not in data and b"CANARY" not in data, file
    forget_secrets()


def test_the_leaderboard_shows_the_answers_each_replica_served(tmp_path: Path) -> None:
    dead = dead_url()
    with FakeEndpoint() as live:
        path = make_eval(tmp_path, [dead, live.base_url])
        outcome, _ = run(path)
        replicas = replica_set([dead, live.base_url])
        asyncio.run(ask(replicas, 3))
        summary = summarize(outcome.results())
        summary.replicas = served_by_replicas({"fake": replicas, "other": object()})
        assert summary.replicas == {"fake": {dead: 0, live.base_url: 3}}
        console = Console(record=True, width=200)
        print_leaderboard(summary, console)
        assert f"fake served by replicas: {dead} 0, {live.base_url} 3" in console.export_text()
        write_output(tmp_path / "report.json", summary, outcome.results(), outcome.run)
        head = json.loads((tmp_path / "report.json").read_text())
        assert head["summary"]["replicas"] == {"fake": {dead: 0, live.base_url: 3}}
        write_output(tmp_path / "report.md", summary, [], outcome.run)
        assert f"{live.base_url} 3" in (tmp_path / "report.md").read_text()


def test_each_replica_is_profiled_as_an_endpoint_of_its_own() -> None:
    provider = Provider(id="gpu", base_url=["http://a:1/v1", "http://b:2/v1"], model="m")
    assert [(p.id, p.base_url) for p in replica_targets(provider)] == [
        ("gpu[0]", "http://a:1/v1"), ("gpu[1]", "http://b:2/v1")]
    single = Provider(id="one", base_url="http://a:1/v1", model="m")
    assert replica_targets(single) == [single]
