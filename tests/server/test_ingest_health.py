"""How the ingest's health state is judged from its inputs (no broker, no database)."""

from __future__ import annotations

from dataclasses import replace

from server.ingest.health import HealthInputs, assess

QUIET = HealthInputs(
    oldest_unacked_s=0.0, retrying_for_s=None, retries_in_a_row=0, connected=True, dead_letters_per_min=0
)


def judge(h: HealthInputs) -> tuple[str, list[str]]:
    return assess(h, stall_after_s=60, dead_letters_warn_per_min=10)


def test_nothing_wrong_is_ok_with_no_problems() -> None:
    assert judge(QUIET) == ("ok", [])


def test_the_worst_state_wins_and_every_problem_is_listed() -> None:
    h = replace(QUIET, oldest_unacked_s=90, retrying_for_s=12, retries_in_a_row=4, connected=False,
                dead_letters_per_min=11)  # fmt: skip
    state, problems = judge(h)
    assert state == "stalled"
    assert problems == [
        "the oldest unacknowledged message is 90 s old (server.ingest.stall_after_s 60)",
        "database errors: batch retried 4 times in 12 s",
        "not connected to the MQTT broker",
        "11 dead letters in the last minute (server.ingest.dead_letters_warn_per_min 10)",
    ]
    assert judge(replace(h, oldest_unacked_s=0))[0] == "retrying"
    assert judge(replace(h, oldest_unacked_s=0, retrying_for_s=None))[0] == "disconnected"
    assert judge(replace(QUIET, dead_letters_per_min=11))[0] == "degraded"
    assert judge(replace(QUIET, dead_letters_per_min=10))[0] == "ok"  # at the threshold is not above it
