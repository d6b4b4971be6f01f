"""The one atomic folder writer: a folder is replaced whole or not at all, and what a kill leaves is recovered."""

from __future__ import annotations

from pathlib import Path

import pytest

from clir_ot.artifacts import atomic_dir, recover_dir

pytestmark = pytest.mark.unit


def _folder(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "done").write_text(text)
    return path


def _complete(folder: Path) -> bool:
    return (folder / "done").is_file()


def test_a_written_folder_replaces_the_old_one_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    target = _folder(tmp_path / "ckpt", "old")
    with atomic_dir(target) as tmp:
        assert tmp != target and tmp.parent == target.parent and not any(tmp.iterdir())
        (tmp / "done").write_text("new")
        assert (target / "done").read_text() == "old"  # untouched until the block ends
    assert (target / "done").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_failed_write_keeps_the_old_folder_and_removes_the_partial_one(tmp_path: Path) -> None:
    target = _folder(tmp_path / "ckpt", "old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("killed")
    assert (target / "done").read_text() == "old" and not (target / "half").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_stale_temporary_folder_of_an_earlier_kill_is_not_carried_into_the_new_one(tmp_path: Path) -> None:
    _folder(tmp_path / "ckpt.tmp", "stale")
    with atomic_dir(tmp_path / "ckpt") as tmp:
        assert not any(tmp.iterdir())
        (tmp / "done").write_text("new")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["done"]


@pytest.mark.parametrize(("left", "expected"), [
    ({"ckpt": "new", "ckpt.old": "old", "ckpt.tmp": None}, "new"),   # killed before deleting the old one
    ({"ckpt.old": "old", "ckpt.tmp": "new"}, "old"),                # killed between the two renames
    ({"ckpt": "new", "ckpt.tmp": None}, "new"),                      # killed while writing: tmp half-written
    ({"ckpt": None, "ckpt.old": "old"}, "old"),                      # a target that is not complete loses
])
def test_recovery_keeps_one_complete_folder(tmp_path: Path, left: dict[str, str | None], expected: str) -> None:
    for name, text in left.items():
        (tmp_path / name).mkdir()
        if text is not None:
            (tmp_path / name / "done").write_text(text)
    recover_dir(tmp_path / "ckpt", _complete)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert (tmp_path / "ckpt" / "done").read_text() == expected


def test_the_one_reuse_rule_says_done_other_or_todo(tmp_path: Path) -> None:
    from clir_ot.artifacts import stage_state

    record = tmp_path / "stage.json"
    assert stage_state(record, "k1") == "todo"                      # never run
    record.write_text('{"config_hash": "k1", "results": []}')
    assert stage_state(record, "k1") == "done"
    assert stage_state(record, "k2") == "other"                     # another configuration: never mixed
    assert stage_state(record, "k1", field="key") == "todo"         # the record keeps its key elsewhere
    record.write_text('{"config_hash": "k1"')                       # cut short by a kill: run it again
    assert stage_state(record, "k1") == "todo"
