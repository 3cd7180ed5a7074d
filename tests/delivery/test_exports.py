from __future__ import annotations

import delivery


def test_all_is_sorted_and_every_name_exists() -> None:
    # isort-style, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    def key(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert delivery.__all__ == sorted(delivery.__all__, key=key)
    assert len(set(delivery.__all__)) == len(delivery.__all__)
    for name in delivery.__all__:
        assert hasattr(delivery, name), name
