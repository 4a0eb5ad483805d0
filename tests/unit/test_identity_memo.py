"""``IdentityMemo`` computes once per object and never answers for a different object."""

from __future__ import annotations

from gateway.pkix.memo import IdentityMemo


def test_computes_once_per_object_and_separately_for_an_equal_one() -> None:
    calls: list[object] = []
    memo: IdentityMemo[list[int], int] = IdentityMemo(lambda o: calls.append(o) or len(o), 8)
    a, b = [1, 2], [1, 2]
    assert memo(a) == 2 and memo(a) == 2
    assert memo(b) == 2
    assert calls == [a, b] and calls[0] is a and calls[1] is b


def test_starts_over_past_its_limit() -> None:
    calls: list[object] = []
    memo: IdentityMemo[object, int] = IdentityMemo(lambda o: calls.append(o) or 0, 2)
    first, objs = object(), [object(), object()]
    memo(first)
    for o in objs:
        memo(o)  # the second one finds the memo full and clears it
    memo(first)
    assert calls.count(first) == 2


def test_a_seeded_value_is_answered_without_computing() -> None:
    calls: list[object] = []
    memo: IdentityMemo[object, str] = IdentityMemo(lambda o: calls.append(o) or "computed", 4)
    seeded, other = object(), object()
    memo.seed(seeded, "seeded")
    assert memo(seeded) == "seeded" and calls == []
    assert memo(other) == "computed" and calls == [other]
