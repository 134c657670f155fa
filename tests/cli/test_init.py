"""`rollback-bot init`: a starter playbook and the built-in templates to edit, which `check` passes; never over
an existing file without --force. The built-in files are the repository's own (one copy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_bot.builtin import builtin_dir
from rollback_bot.cli import main
from rollback_bot.starter import PLAYBOOK

ROOT = Path(__file__).resolve().parents[2]


def test_the_built_in_folders_are_the_top_level_ones() -> None:
    for name in ("templates", "playbooks"):
        link = ROOT / "src" / "rollback_bot" / "data" / name
        assert link.is_symlink() and link.resolve() == (ROOT / name).resolve()  # a link, never a second copy
        assert builtin_dir(name).resolve() == (ROOT / name).resolve()


def test_init_writes_a_starter_that_check_passes_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "ops"
    assert main(["init", str(dest)]) == 0
    out = capsys.readouterr().out
    playbook = dest / PLAYBOOK
    assert f"wrote {playbook}\n" in out and f"wrote {dest}/templates/postmortem.md.j2\n" in out
    assert f"  rollback-bot check {dest}\n  rollback-bot drill {playbook}" in out
    assert f"Every key, with examples: {ROOT / 'playbooks' / 'README.md'}; all of them used: " in out
    written = sorted(p.relative_to(dest / "templates") for p in (dest / "templates").rglob("*.j2"))
    assert written == sorted(p.relative_to(ROOT / "templates") for p in (ROOT / "templates").rglob("*.j2"))
    text = playbook.read_text()
    assert "\ntemplates: templates " in text and "# EDIT" in text
    assert main(["check", str(dest)]) == 0
    assert f"{playbook}: ok (my-service " in capsys.readouterr().out

    playbook.write_text(text + "# my edit\n")
    assert main(["init", str(dest)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{playbook} exists already\n" in err and f"{dest}/templates/comms/internal-alert.md.j2 exists already" in err
    )
    assert "init: wrote nothing; --force overwrites these 10 file(s)" in err
    assert playbook.read_text().endswith("# my edit\n")
    assert main(["init", str(dest), "--force"]) == 0
    assert playbook.read_text() == text


def test_init_defaults_to_the_current_folder_and_check_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert (tmp_path / PLAYBOOK).is_file() and (tmp_path / "templates" / "comms").is_dir()
    assert "  rollback-bot check .\n  rollback-bot drill my-service.yaml" in capsys.readouterr().out
    assert main(["check"]) == 0  # no playbooks/ here: the current folder
    assert "my-service.yaml: ok" in capsys.readouterr().out
