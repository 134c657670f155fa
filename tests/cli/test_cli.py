"""The command itself, as a new user meets it: --version and --help, one line and exit 2 for a database that
cannot be opened or a bad logging setting, no traceback when its reader goes away (`export 1 | head`), logs at
the level and in the format asked for, and the lifecycle at INFO once committed."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rollback_bot import __version__, flows
from rollback_bot.store import audit
from tests.export.test_export import drive
from tests.flows.conftest import Env

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollback_bot.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_version_and_a_help_that_says_what_the_tool_is() -> None:
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"rollback-bot {__version__}"
    shown = run("--help").stdout
    assert "Slack chatops bot" in shown and "rollback ladder" in shown
    assert "rollback-bot init DIR" in shown and "LOG_FORMAT=json" in shown


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql+psycopg://rollback@nohost.invalid/rollback", "failed to resolve host 'nohost.invalid'"),
        ("postgresql+psycopg://nobody@127.0.0.1:5432/nodb", 'role "nobody" does not exist'),
        ("sqlite:////nonexistent/folder/rollback.db", "no database at /nonexistent/folder/rollback.db"),
        ("mysql://db/rollback", "is not a database URL rollback-bot can open"),
    ],
)
def test_a_database_that_cannot_be_opened_is_one_line_and_exit_2(url: str, said: str) -> None:
    out = run("audit", "verify", "--database", url)
    assert out.returncode == 2, out.stderr
    assert said in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_bad_logging_settings_are_refused_in_one_line() -> None:
    out = run("check", env={"LOG_LEVEL": "loud"})
    assert out.returncode == 2 and out.stderr.strip() == (
        "LOG_LEVEL=loud is not a level: use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )
    out = run("check", env={"LOG_FORMAT": "xml"})
    assert out.returncode == 2 and "LOG_FORMAT=xml is not a format" in out.stderr


def test_export_into_a_pipe_closed_early_ends_quietly(env: Env, tmp_path: Path) -> None:
    drive(env)
    with env.deps.store.session() as s:  # more than a pipe holds, so the export is still writing when the reader goes
        for i in range(400):
            text = f"note {i}: " + "x" * 2000  # 1.6 MB in all: far more than a pipe and its readers hold
            audit.record(s, playbook="test-release", incident_id=1, kind="note", at=env.clock.now(), summary=text)
        s.commit()
    url = env.deps.store.url
    proc = subprocess.Popen(
        [sys.executable, "-m", "rollback_bot.cli", "export", "1", "--format", "csv", "--database", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()  # `head -1`
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert err == "", err


def test_json_log_lines_and_the_lifecycle_once_committed(
    env: Env, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from rollback_bot.logs import configure

    with caplog.at_level(logging.INFO, logger="rollback_bot.timeline"):
        with env.deps.store.session() as s:  # rolled back: never logged
            audit.record(s, playbook="test-release", kind="note", at=env.clock.now(), summary="never happened")
            s.rollback()
        drive(env)
    said = [(r.levelname, r.getMessage(), getattr(r, "kind", None)) for r in caplog.records]
    assert not any("never happened" in m for _, m, _ in said)
    [opened] = [(level, message) for level, message, kind in said if kind == "incident.opened"]
    assert opened[0] == "INFO" and opened[1].startswith("test-release: incident #1 opened on ")
    kinds = [k for _, _, k in said]
    assert {"incident.opened", "step.entered", "ack", "approval", "action.started", "action.succeeded"} <= set(kinds)

    os.environ["LOG_FORMAT"] = "json"
    try:
        configure(logging.INFO)
        logging.getLogger("rollback_bot.timeline").info(
            "incident #1: resolved", extra={"incident": 1, "playbook": "pb", "kind": "incident.resolved"}
        )
    finally:
        del os.environ["LOG_FORMAT"]
        logging.getLogger().handlers.clear()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["level"] == "INFO" and line["message"] == "incident #1: resolved"
    assert line["incident"] == 1 and line["kind"] == "incident.resolved" and line["time"].endswith("+00:00")


def test_the_log_follows_stderr_when_it_is_swapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler made once writes to the stderr of the moment: never to one closed since ('Logging error')."""
    import io

    from rollback_bot.logs import configure

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    try:
        configure(logging.INFO)
        first.close()  # as pytest closes a test's capture
        second = io.StringIO()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("rollback_bot.test").warning("after the swap")
        assert "WARNING rollback_bot.test: after the swap" in second.getvalue()
    finally:
        logging.getLogger().handlers.clear()


def test_serve_on_a_port_it_cannot_have_is_one_line_and_exit_2(tmp_path: Path) -> None:
    import socket

    from tests.slack.conftest import SECRET, TOKEN

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        settings = {
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": "http://127.0.0.1:9/api/",
            "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
            "ROLLBACK_PLAYBOOKS": str(ROOT / "playbooks" / "genai-release.yaml"),
            "ROLLBACK_PORT": str(port),
        }
        out = run("serve", env=settings)
    finally:
        taken.close()
    assert out.returncode == 2, out.stderr
    assert f"cannot start: cannot listen on 127.0.0.1:{port} (Address already in use)" in out.stderr
    assert "Traceback" not in out.stderr and "leading the scheduler" not in out.stderr  # nothing started first


def test_export_takes_its_format_from_out_and_refuses_a_contradiction(env: Env, tmp_path: Path) -> None:
    drive(env)
    assert not flows.resolve(env.deps, 1, "UX").ok  # a refusal to resolve: listed with the others
    url = env.deps.store.url
    out = run("export", "1", "--database", url, "--out", str(tmp_path / "pm.html"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "pm.html").read_text().lstrip().lower().startswith("<!doctype html")
    out = run("export", "1", "--database", url, "--out", str(tmp_path / "pm.json"))
    doc = json.loads((tmp_path / "pm.json").read_text())
    assert [d["action"] for d in doc["denials"]].count("resolve") == 1  # resolve refusals are in the record
    out = run("export", "1", "--database", url, "--format", "md", "--out", str(tmp_path / "pm.csv"))
    assert out.returncode == 2 and "names csv but --format is md" in out.stderr
    assert not (tmp_path / "pm.csv").exists()


def test_an_out_file_that_cannot_be_written_is_said_in_one_line_before_any_work(env: Env, tmp_path: Path) -> None:
    drive(env)
    here = tmp_path / "out"
    here.mkdir()
    (here / "a-file").write_text("")
    for out in (here / "no-such-folder" / "pm.md", here / "a-file" / "pm.md"):
        done = run("export", "1", "--database", env.deps.store.url, "--out", str(out))
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith(f"export: cannot write --out {out}: ") and "folder" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert [p.name for p in here.rglob("*")] == ["a-file"]


def test_a_disk_that_fills_up_leaves_no_export_and_says_so(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The chart does not fit: neither the Markdown nor the charts already written stay behind (a draft
    without its charts would look complete)."""
    import errno

    from rollback_bot import cli

    drive(env)
    here = tmp_path / "out"
    here.mkdir()
    real = Path.write_bytes

    def full(path: Path, data: bytes) -> int:
        real(path, data[:10])  # what fitted
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(Path, "write_bytes", full)
    assert cli.main(["export", "1", "--database", env.deps.store.url, "--out", str(here / "pm.md")]) == 2
    said = capsys.readouterr().err
    assert said == f"export: cannot write {here / 'pm-errors.png'}: No space left on device; nothing was written\n"
    assert list(here.iterdir()) == []


def test_serve_reads_the_playbooks_init_wrote_where_it_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rollback-bot init` writes the playbook into the current folder; serve, unset, reads it there (and
    playbooks/ where that folder exists, as in the repository)."""
    from pydantic import SecretStr

    from rollback_bot.config import Settings
    from tests.slack.conftest import SECRET, TOKEN

    monkeypatch.delenv("ROLLBACK_PLAYBOOKS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Settings(slack_bot_token=SecretStr(TOKEN), slack_signing_secret=SecretStr(SECRET)).playbook_paths == ["."]
    (tmp_path / "playbooks").mkdir()
    assert Settings(slack_bot_token=SecretStr(TOKEN), slack_signing_secret=SecretStr(SECRET)).playbook_paths == [
        "playbooks"
    ]


def test_a_broken_chain_exported_with_verify_exits_1_and_says_so_in_every_format(env: Env, tmp_path: Path) -> None:
    import sqlalchemy

    drive(env)
    url = env.deps.store.url
    for fmt in ("md", "csv"):
        done = run("export", "1", "--verify", "--database", url, "--out", str(tmp_path / f"ok.{fmt}"))
        assert done.returncode == 0 and "BROKEN" not in done.stderr, done.stderr
    with env.deps.store.engine.begin() as conn:
        conn.execute(sqlalchemy.text("update event set summary = 'nothing happened' where seq = 3 and incident_id = 1"))
    for fmt in ("md", "json", "csv", "html"):
        done = run("export", "1", "--verify", "--database", url, "--out", str(tmp_path / f"pm.{fmt}"))
        assert done.returncode == 1, (fmt, done.stderr)
        assert "export: the timeline's chain is BROKEN: event #3 (no. 3 of the chain" in done.stderr
        assert "was changed after it was written" in done.stderr and (tmp_path / f"pm.{fmt}").exists()


def test_out_through_a_link_a_pipe_or_at_once(env: Env, tmp_path: Path) -> None:
    """A link keeps pointing at its file, which is replaced; a device or pipe (/dev/stdout) is written as it
    goes; exports at once to one file each finish, none in another's way."""
    drive(env)
    url = env.deps.store.url
    (tmp_path / "kept.md").write_text("old")
    (tmp_path / "link.md").symlink_to("kept.md")
    done = run("export", "1", "--database", url, "--out", str(tmp_path / "link.md"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "link.md").is_symlink() and (tmp_path / "kept.md").read_text().startswith("# Post-mortem")
    done = run("export", "1", "--format", "json", "--database", url, "--out", "/dev/stdout")  # a pipe, here
    assert done.returncode == 0 and json.loads(done.stdout)["incident"]["id"] == 1, done.stderr
    cmd = [sys.executable, "-m", "rollback_bot.cli", "export", "1", "--database", url, "--out", str(tmp_path / "a.csv")]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    said = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], said
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["export", "99999999999999999999999"], "'99999999999999999999999' is not an incident number: it is too large"),
        (["export", "abc"], "'abc' is not an incident number: write N or #N, e.g. 12"),
        (["audit", "verify", "0"], "'0' is not an incident number: they count from 1"),
    ],
)
def test_an_incident_number_that_is_none_is_refused_in_words(args: list[str], said: str) -> None:
    out = run(*args)
    assert out.returncode == 2 and said in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_init_into_a_file_or_where_nothing_can_be_written_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    for where, said in [
        (tmp_path / "afile", f"init: {tmp_path / 'afile'} is a file; name a folder"),
        (Path("/proc/no-such-folder"), "init: cannot write /proc/no-such-folder"),
    ]:
        out = run("init", str(where))
        assert out.returncode == 2 and out.stderr.startswith(said) and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_reading_a_database_that_is_not_there_says_so_and_makes_none(tmp_path: Path) -> None:
    """No DATABASE_URL where no bot has run: exports and checks say where they looked, and leave no empty
    database behind; a database with no events says there was nothing to check."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    for args in (["export", "1"], ["audit", "verify"]):
        out = subprocess.run(
            [sys.executable, "-m", "rollback_bot.cli", *args], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert (
            out.stderr.strip()
            == f"no database at {tmp_path / 'rollback-bot.db'}: set DATABASE_URL (or --database) to the bot's database"
        )
    assert list(tmp_path.iterdir()) == []
    from rollback_bot.store import Store

    Store(f"sqlite:///{tmp_path / 'empty.db'}").close()
    out = run("audit", "verify", "--database", f"sqlite:///{tmp_path / 'empty.db'}")
    assert (
        out.returncode == 0
        and out.stderr.strip() == f"no events in sqlite:///{tmp_path / 'empty.db'}: nothing to check"
    )


def test_a_template_that_fails_halfway_leaves_nothing_on_stdout(env: Env, tmp_path: Path) -> None:
    drive(env)
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "postmortem.md.j2").write_text("# {{ i.service }}\n{{ nope.x }}\n")
    out = run("export", "1", "--database", env.deps.store.url, "--templates", str(tmp_path / "ours"))
    assert out.returncode == 2 and out.stdout == "", out.stdout
    assert out.stderr.startswith(f"export: {tmp_path / 'ours' / 'postmortem.md.j2'}:2: 'nope' is undefined")
    out = run("export", "1", "--database", env.deps.store.url)
    assert out.returncode == 0 and out.stdout.startswith("# Post-mortem: svc incident #1")


def test_out_never_replaces_the_evidence_a_read_only_file_or_loops(env: Env, tmp_path: Path) -> None:
    drive(env)
    url = env.deps.store.url
    here = tmp_path / "out"
    here.mkdir()
    (here / "loop-a.md").symlink_to("loop-b.md")
    (here / "loop-b.md").symlink_to("loop-a.md")
    (here / "ro.md").write_text("keep")
    (here / "ro.md").chmod(0o444)
    cases = [(here / "loop-a.md", "is a loop of symbolic links"), (here / "ro.md", "is read-only; remove it")]
    if env.deps.store.file is not None:  # SQLite: --out at the database, directly or through a link
        (here / "evidence.json").symlink_to(env.deps.store.file)
        cases += [
            (Path(env.deps.store.file), "is the database being exported"),
            (here / "evidence.json", "is the database"),
        ]
    for out, said in cases:
        done = run("export", "1", "--database", url, "--out", str(out))
        assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, (out, done.stderr)
    assert (here / "ro.md").read_text() == "keep" and not list(here.glob("*.partial"))
    assert run("audit", "verify", "--database", url).returncode == 0  # the database is as it was


def test_a_replaced_export_keeps_its_permissions_and_a_killed_ones_leftover_goes(env: Env, tmp_path: Path) -> None:
    drive(env)
    out = tmp_path / "private.json"
    out.write_text("{}")
    out.chmod(0o600)
    dead = tmp_path / "private.json.999999999.partial"  # what an export killed with -9 left (no such process)
    dead.write_text("half")
    done = run("export", "1", "--database", env.deps.store.url, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert (out.stat().st_mode & 0o777) == 0o600 and json.loads(out.read_text())["incident"]["id"] == 1
    assert not dead.exists()


def test_an_export_asked_to_stop_ends_as_ctrl_c_does(env: Env, tmp_path: Path) -> None:
    """SIGTERM (a supervisor, `timeout`) or SIGHUP (a closed terminal): one line, exit 130 as for Ctrl-C, no
    partial file or process left."""
    import signal
    import time

    drive(env)
    with env.deps.store.session() as s:  # enough that it is still at work when stopped
        for i in range(3000):
            audit.record(s, playbook="test-release", incident_id=1, kind="note", at=env.clock.now(), summary=f"n{i}")
        s.commit()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        cmd = [sys.executable, "-m", "rollback_bot.cli", "export", "1", "--database", env.deps.store.url]
        proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "pm.html")], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("*.partial")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)  # until it is writing: its file is there
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 0:  # it finished first on a fast machine: nothing to see
            continue
        # 130, or Python's own end by SIGINT where the stop fell in its fork handlers (-2): interrupted, either way
        assert proc.returncode in (130, -2) and err == "rollback-bot export: interrupted\n", (signum, err)
        assert not list(tmp_path.glob("*.partial"))
