"""`--fix package.module:function`: loading it, and what it may return."""

from __future__ import annotations

import pytest

from tidegate_dev.ops.dlq_redrive import apply_fix, load_fix


def test_load_fix_names_what_is_wrong() -> None:
    assert load_fix("examples.dlq_fix:repair").__name__ == "repair"
    with pytest.raises(SystemExit, match=r"expected package\.module:function"):
        load_fix("examples.dlq_fix")
    with pytest.raises(SystemExit, match=r"cannot import examples\.nowhere"):
        load_fix("examples.nowhere:repair")
    with pytest.raises(SystemExit, match="has no function 'mend'"):
        load_fix("examples.dlq_fix:mend")


def test_apply_fix_passes_objects_as_dicts_and_anything_else_as_bytes() -> None:
    seen: list[object] = []

    def fix(record: object) -> object:
        seen.append(record)
        return {"ok": 1} if isinstance(record, dict) else None

    assert apply_fix(fix, b'{"a": 1}') == b'{"ok":1}'
    assert apply_fix(fix, b'{"a": ') is None
    assert apply_fix(fix, b"[1, 2]") is None  # JSON, but not an object: bytes
    assert seen == [{"a": 1}, b'{"a": ', b"[1, 2]"]
    assert apply_fix(None, b"as is") == b"as is"
    assert apply_fix(lambda r: b"raw", b"x") == b"raw"
    with pytest.raises(TypeError, match="returned list; expected dict, bytes or None"):
        apply_fix(lambda r: [1], b"x")
