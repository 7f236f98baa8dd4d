"""The stream protocol core (motive_hooks.protocol) without a daemon: numbering, acknowledgement,
query versions and what a reconnect sends again, driven the way MotiveClient drives it and checked
against the rules of docs/wire.md written out in each test, and the scenarios of
schemas/stream-protocol.scenarios.json, which the TypeScript client's core replays too
(test/unit/client/protocol.test.ts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from motive_hooks.protocol import MAX_UNCONFIRMED_QUERIES, StreamProtocol

Msg = Tuple[str, int]  # ("batch", seq) or ("queries", version): the protocol never looks inside


def send_batch(p: StreamProtocol[Msg]) -> int:
    seq = p.take_seq()
    p.batch_sent(seq, ("batch", seq))
    return seq


def send_queries(p: StreamProtocol[Msg]) -> int:
    requested = p.number_queries()
    return p.queries_sent(requested, ("queries", requested))


def test_numbers_batches_after_the_first_welcome_and_keeps_them_until_acked() -> None:
    p: StreamProtocol[Msg] = StreamProtocol()
    with pytest.raises(RuntimeError):
        p.take_seq()  # no Welcome yet: where to continue is unknown
    resume = p.welcome(last_committed_seq=41, query_version=0)
    assert resume.messages == [] and resume.acked == 0
    assert [send_batch(p) for _ in range(3)] == [42, 43, 44]
    assert p.reject(43) is True  # a rejected batch is never resent
    assert list(p.unacked) == [42, 44]
    assert p.ack(42) == 1
    assert p.ack(42) == 0  # acknowledged already
    assert list(p.unacked) == [44]


def test_a_reconnect_resends_the_unacked_batches_in_order_keeping_their_numbers() -> None:
    p: StreamProtocol[Msg] = StreamProtocol()
    p.welcome(0, 0)
    for _ in range(5):
        send_batch(p)
    p.ack(1)
    # The new stream's Welcome shows 3 committed (its Ack was lost with the old stream).
    resume = p.welcome(last_committed_seq=3, query_version=0)
    assert resume.acked == 2  # 2 and 3
    assert resume.messages == [("batch", 4), ("batch", 5)]
    assert resume.resent == 2
    assert send_batch(p) == 6  # numbering goes on: the first Welcome fixed the base


def test_resends_every_unconfirmed_query_set_before_the_batches() -> None:
    p: StreamProtocol[Msg] = StreamProtocol()
    p.welcome(0, 0)
    assert send_queries(p) == 1  # confirmed by batch 1
    send_batch(p)
    assert send_queries(p) == 2  # confirmed by batch 2
    send_batch(p)
    assert send_queries(p) == 3  # no batch after it yet
    p.ack(1)  # confirms version 1 only
    resume = p.welcome(last_committed_seq=1, query_version=2)
    assert resume.messages == [("queries", 2), ("queries", 3), ("batch", 2)]
    p.ack(2)
    # Version 3 is sent before batch 3, whose ack confirms it.
    send_batch(p)
    p.ack(3)
    assert p.unconfirmed_queries == 0
    # Confirmed query sets are durable in the run: a reconnect sends none of them again.
    assert p.welcome(3, 3).messages == []


def test_keeps_at_most_the_bound_of_unconfirmed_query_sets_forgetting_the_oldest() -> None:
    p: StreamProtocol[Msg] = StreamProtocol(max_unconfirmed_queries=4)
    p.welcome(0, 0)
    for _ in range(7):
        send_queries(p)
    assert p.unconfirmed_queries == 4
    assert p.welcome(0, 0).messages == [("queries", v) for v in (4, 5, 6, 7)]
    assert StreamProtocol().max_unconfirmed_queries == MAX_UNCONFIRMED_QUERIES == 256


def test_a_single_rank_numbers_query_sets_above_what_the_run_holds() -> None:
    p: StreamProtocol[Msg] = StreamProtocol(world_size=1)
    requested = p.number_queries()  # published before attaching: numbered 1 for now
    assert requested == 1
    p.welcome(last_committed_seq=0, query_version=7)  # the run holds versions up to 7
    assert p.query_version == 7
    assert p.queries_sent(requested, ("queries", 1)) == 8  # renumbered when sent
    assert p.number_queries() == 9
    # A later Welcome with a higher version raises the floor again (one rank: its own history).
    p.welcome(last_committed_seq=0, query_version=20)
    assert p.queries_sent(9, ("queries", 9)) == 21


def test_several_ranks_take_the_run_version_only_when_restarted() -> None:
    fresh: StreamProtocol[Msg] = StreamProtocol(world_size=2)
    fresh.welcome(last_committed_seq=0, query_version=5)  # no history: numbers 1, 2, ... like its peers
    assert send_queries(fresh) == 1
    restarted: StreamProtocol[Msg] = StreamProtocol(world_size=2)
    restarted.welcome(last_committed_seq=12, query_version=5)  # committed batches: a restarted rank
    assert send_queries(restarted) == 6
    # Only the first Welcome counts: a reconnect does not move a multi-rank numbering.
    restarted.welcome(last_committed_seq=12, query_version=9)
    assert send_queries(restarted) == 7


def test_versions_only_go_up_in_sending_order() -> None:
    p: StreamProtocol[Msg] = StreamProtocol()
    p.welcome(0, 0)
    assert p.queries_sent(5, ("queries", 5)) == 5
    assert p.queries_sent(3, ("queries", 3)) == 6  # never at or below one already sent


def test_room_is_the_unacked_bound_and_drop_forgets_everything() -> None:
    p: StreamProtocol[Msg] = StreamProtocol(max_unacked=2)
    p.welcome(0, 0)
    send_batch(p)
    assert p.has_room()
    send_batch(p)
    assert not p.has_room()
    p.ack(1)
    assert p.has_room()
    send_batch(p)
    assert p.drop_unacked() == [("batch", 2), ("batch", 3)]
    assert not p.unacked and p.has_room()


def test_a_worker_resends_everything_after_a_reconnect() -> None:
    # A worker's Welcome always says 0 committed: it resends every unacknowledged batch.
    p: StreamProtocol[Msg] = StreamProtocol()
    p.welcome(0, 0)
    sent: List[int] = [send_batch(p) for _ in range(3)]
    p.ack(2)  # Acks come in commit order: batch 1 is committed (or was refused) too
    assert p.welcome(0, 0).messages == [("batch", 3)]
    assert sent == [1, 2, 3]


SCENARIOS: List[Dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[3] / "schemas" / "stream-protocol.scenarios.json").read_text("utf-8")
)["scenarios"]


def _replay(p: StreamProtocol[Any], step: Dict[str, Any], at: str) -> None:
    """One step of a scenario (the file's ``about`` says what each key means)."""
    if "welcome" in step:
        got = [m[1] if m[0] == "queries" else f"b{m[1]}" for m in p.welcome(step["welcome"], 0).messages]
        assert got == step["resend"], at
    elif "batch" in step:
        assert send_batch(p) == step["batch"], at
    elif "queries" in step:
        p.queries_sent(p.number_queries(), ("queries", step["queries"]))
    elif "ack" in step:
        assert p.ack(step["ack"]) == step["acked"], at
    elif "reject" in step:
        assert p.reject(step["reject"]) is step["found"], at
    elif "pending" in step:
        assert len(p.unacked) == step["pending"], at
    elif "unconfirmed" in step:
        assert p.unconfirmed_queries == step["unconfirmed"], at
    else:
        raise AssertionError(f"{at}: unknown step {step}")


def test_reads_the_shared_scenarios() -> None:
    assert len(SCENARIOS) >= 8


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_shared_scenario(scenario: Dict[str, Any]) -> None:
    p: StreamProtocol[Any] = StreamProtocol(
        max_unconfirmed_queries=scenario.get("maxUnconfirmedQueries", MAX_UNCONFIRMED_QUERIES)
    )
    for i, step in enumerate(scenario["steps"]):
        _replay(p, step, f"{scenario['name']}, step {i + 1}")
