from __future__ import annotations

from datetime import timedelta

from detectors import NewToolConfig, NewToolDetector, epoch_s
from tests.detectors.series import DAY, WED, observations

AT = WED + timedelta(hours=10)
OLD = WED - timedelta(days=30)


def _detector(**settings: object) -> NewToolDetector:
    return NewToolDetector(NewToolConfig.model_validate(settings))


def _tools(*pairs: tuple[str, str, str], calls: int = 3) -> list[dict[str, object]]:
    return [
        {"account_id": a, "server": s, "tool": t, "start": epoch_s(AT), "calls": calls, "denied": 0}
        for a, s, t in pairs
    ]


def _obs(*pairs: tuple[str, str, str], known=frozenset(), since=None):  # type: ignore[no-untyped-def]
    return observations(
        AT, [], window_s=300, tools=_tools(*pairs), known=known, since=since or {"a": OLD}
    )


def test_a_pair_used_for_the_first_time_is_reported() -> None:
    [anomaly] = _detector().judge(_obs(("a", "github", "delete_repo")))
    assert (anomaly.type, anomaly.server, anomaly.tool) == ("new_tool", "github", "delete_repo")
    assert anomaly.observed == 3
    assert anomaly.severity == "medium"
    assert "first time" in anomaly.summary
    assert "github/delete_repo" in anomaly.summary


def test_a_known_pair_is_not_reported_even_after_a_long_gap() -> None:
    known = frozenset({("a", "github", "delete_repo")})
    assert _detector().judge(_obs(("a", "github", "delete_repo"), known=known)) == []


def test_a_new_account_learns_its_tools_during_the_warm_up() -> None:
    obs = _obs(("b", "s", "t1"), ("b", "s", "t2"), since={"b": AT - timedelta(days=1)})
    detector = _detector()
    assert detector.judge(obs) == []
    assert detector.unknown_pairs(obs) == [("b", "s", "t1"), ("b", "s", "t2")]


def test_an_account_seen_for_the_first_time_is_in_its_warm_up() -> None:
    assert _detector().judge(_obs(("new", "s", "t"), since={})) == []


def test_the_warm_up_is_configurable_per_account() -> None:
    obs = _obs(("b", "s", "t"), since={"b": AT - timedelta(days=1)})
    assert _detector(accounts={"b": {"warmup_s": DAY // 2}}).judge(obs) != []
    assert _detector(warmup_s=0).judge(_obs(("new", "s", "t"), since={})) != []


def test_the_same_new_pair_found_again_has_the_same_id() -> None:
    first = _detector().judge(_obs(("a", "s", "t")))[0]
    later = observations(
        AT + timedelta(days=1),
        [],
        window_s=300,
        tools=[dict(r, start=epoch_s(AT + timedelta(days=1))) for r in _tools(("a", "s", "t"))],
        since={"a": OLD},
    )
    assert _detector().judge(later)[0].anomaly_id == first.anomaly_id
