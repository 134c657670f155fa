"""A team that keeps only its comms drafts: exports use the built-in post-mortem templates and `check` says so;
a post-mortem template of its own that does not render is a `check` error at the template's line."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollback_bot.checking import check_file, postmortem_notes
from rollback_bot.cli import main
from rollback_bot.export import ExportError
from rollback_bot.playbook import load_playbook
from tests.export.test_export import drive, export
from tests.flows.conftest import PLAYBOOK, TEMPLATES, Env


def own_templates(env: Env, tmp_path: Path, **files: str) -> Path:
    """The env's playbook pointed at a folder with the built-in comms drafts and `files` (name: text)."""
    folder = tmp_path / "team-templates"
    shutil.copytree(TEMPLATES / "comms", folder / "comms")
    for name, text in files.items():
        (folder / name).write_text(text)
    env.path.write_text(PLAYBOOK.format(url=env.http.url, templates=folder))
    env.loaded = load_playbook(env.path)
    return folder


def test_a_folder_with_only_comms_exports_with_the_built_in_post_mortem(env: Env, tmp_path: Path, capsys) -> None:
    own_templates(env, tmp_path)
    drive(env)
    assert export(env, "md").startswith("# Post-mortem: svc incident #1 (critical)")
    assert "<h1>Post-mortem: svc incident #1 (critical)</h1>" in export(env, "html")
    loaded, errors = check_file(env.path, env=False)
    assert errors == [] and loaded is not None
    notes = postmortem_notes(loaded)
    assert len(notes) == 2 and all(
        n.endswith("not found: exports use the built-in post-mortem template") for n in notes
    )
    assert main(["check", "--no-env", str(env.path)]) == 0
    shown = capsys.readouterr().out
    assert f"{env.path}: note: " in shown and "postmortem.html.j2 not found" in shown


def test_the_playbooks_own_post_mortem_wins_and_an_explicit_folder_must_have_one(env: Env, tmp_path: Path) -> None:
    own_templates(env, tmp_path, **{"postmortem.md.j2": "Our own: {{ i.service }} #{{ i.id }}\n"})
    drive(env)
    assert export(env, "md") == "Our own: svc #1"
    assert postmortem_notes(env.loaded) == [
        f"{tmp_path}/team-templates/postmortem.html.j2 not found: exports use the built-in post-mortem template"
    ]
    try:
        export(env, "md", templates=tmp_path / "nowhere")
    except ExportError as exc:
        assert "nowhere/postmortem.md.j2 not found" in str(exc)
    else:
        raise AssertionError("an explicit --templates folder without the template must be refused")


def test_check_renders_the_playbooks_own_post_mortem_and_points_at_its_line(env: Env, tmp_path: Path) -> None:
    folder = own_templates(
        env,
        tmp_path,
        **{
            "postmortem.md.j2": "# {{ i.service }}\n{% for s in doc.ladder %}\n{{ s.nope }}\n{% endfor %}\n",
            "postmortem.html.j2": "<h1>{{ i.service | nosuchfilter }}</h1>\n",
        },
    )
    _, errors = check_file(env.path, env=False)
    shown = sorted(str(e) for e in errors)
    assert shown[0].startswith(f"{folder}/postmortem.html.j2:1: post-mortem template does not render: ")
    assert "nosuchfilter" in shown[0]
    assert (
        shown[1] == f"{folder}/postmortem.md.j2:3: post-mortem template does not render: 'dict object' has no "
        "attribute 'nope'"
    )


def test_an_export_through_a_broken_template_says_its_line_and_what_to_do(env: Env, tmp_path: Path, capsys) -> None:
    """A template given with --templates is not one `check` has seen: what fails in it is one line at the
    template's line (exit 2, no file left), never a traceback."""
    drive(env)
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "postmortem.md.j2").write_text("# {{ i.service }}\n\n{{ i.service / 0 }}\n")
    (folder / "postmortem.html.j2").write_text("<h1>x</h1>\n{% for %}\n")
    for fmt, line, what in [("md", 3, "unsupported operand"), ("html", 2, "Expected an expression")]:
        try:
            export(env, fmt, templates=folder)
            raise AssertionError("exported through a broken template")
        except ExportError as exc:
            said = str(exc)
        assert said.startswith(f"{folder}/postmortem.{fmt}.j2:{line}: ") and what in said, said
        assert "pass --templates DIR" in said
    out = tmp_path / "pm.md"
    url = env.deps.store.url
    assert main(["export", "1", "--templates", str(folder), "--out", str(out), "--database", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"export: {folder}/postmortem.md.j2:3: ") and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("pm.md*"))


def _zombies() -> int:
    """This process's children that ended and were never waited for."""
    mine = str(os.getpid())
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        count += fields[0] == "Z" and fields[1] == mine
    return count


def test_what_fails_beside_the_template_is_not_blamed_on_it_and_no_fork_is_left(
    env: Env, tmp_path: Path, monkeypatch
) -> None:
    """The timeline's rows and the charts are made while the template runs: a database error among them is
    the database's (raised as is), not the template's; and an export that fails after forking its timeline
    and charts waits for both (no process left unwaited, no file open)."""
    import sqlalchemy

    from rollback_bot.export import document

    drive(env)

    def locked(*_a: object, **_k: object) -> Iterator[tuple[object, ...]]:
        raise sqlalchemy.exc.OperationalError("select", {}, Exception("database is locked"))
        yield ()

    with monkeypatch.context() as m:
        m.setattr(document, "timeline", locked)
        with pytest.raises(sqlalchemy.exc.OperationalError):
            export(env, "md")
    folder = tmp_path / "fails-early"
    folder.mkdir()
    (folder / "postmortem.html.j2").write_text("<h1>{{ 1 / 0 }}</h1>\n{% for row in timeline %}{{ row }}{% endfor %}\n")
    zombies = _zombies()
    with pytest.raises(ExportError, match=r"postmortem.html.j2:1: ZeroDivisionError"):
        export(env, "html", templates=folder, out=tmp_path / "pm.html", background=True)
    assert _zombies() == zombies
