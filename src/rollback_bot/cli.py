"""rollback-bot: a Slack chatops bot that watches a release's metrics, opens an incident when a playbook's
rollback criteria are met, and walks the playbook's time-phased rollback ladder with role-gated approvals and
an audit trail. Also: drills, rollout gates, backtests and post-mortem exports."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from pathlib import Path

    from rollback_bot.plotting import Plotter

# every command imports what it needs when it runs: `audit verify` or a CSV export need no pydantic models


def cmd_check(args: argparse.Namespace) -> int:
    from rollback_bot.checking import check_file, default_playbooks, playbook_files, postmortem_notes

    paths = args.paths or [default_playbooks()]
    files = playbook_files(paths)
    if not files:
        print(f"no playbooks (*.yaml) found in {' '.join(paths)}", file=sys.stderr)
        return 2
    failed = 0
    for path in files:
        loaded, errors = check_file(path, env=not args.no_env)
        for err in errors:
            print(err, file=sys.stderr)
        if errors or loaded is None:
            failed += 1
        else:
            pb = loaded.playbook
            actions = sum(len(s.actions) for s in pb.ladder)
            print(
                f"{path}: ok ({pb.name} v{loaded.version}: {len(pb.signals)} signals, {len(pb.triggers)} triggers, "
                f"{len(pb.ladder)} steps, {actions} actions)"
            )
            for note in postmortem_notes(loaded):
                print(f"{path}: note: {note}")
    if failed:
        print(f"{failed} of {len(files)} playbook(s) have errors", file=sys.stderr)
    return 1 if failed else 0


def incident_number(text: str) -> int:
    """N or #N, as the argument of a command: a positive whole number the database can hold."""
    try:
        number = int(text.lstrip("#"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an incident number: write N or #N, e.g. 12") from None
    if not 0 < number < 2**63:
        why = "they count from 1" if number < 1 else "it is too large"
        raise argparse.ArgumentTypeError(f"{text!r} is not an incident number: {why}")
    return number


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rollback_bot.builtin import builtin_dir
    from rollback_bot.starter import PLAYBOOK, StarterExists, write_starter

    dest = Path(args.dir)
    if dest.exists() and not dest.is_dir():
        print(f"init: {dest} is a file; name a folder (it is made where missing)", file=sys.stderr)
        return 2
    try:
        written = write_starter(dest, force=args.force)
    except StarterExists as exc:
        for path in exc.paths:
            print(f"{path} exists already", file=sys.stderr)
        print(f"init: wrote nothing; --force overwrites these {len(exc.paths)} file(s)", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"init: cannot write {exc.filename or dest}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    playbook = dest / PLAYBOOK
    print(
        f"\nNext: edit {playbook} (the lines marked EDIT) and the drafts in {dest / 'templates'}, then\n"
        f"  rollback-bot check {dest}\n"
        f"  rollback-bot drill {playbook}"
    )
    examples = builtin_dir("playbooks").resolve()
    print(f"Every key, with examples: {examples / 'README.md'}; all of them used: {examples / 'genai-release.yaml'}")
    return 0


def cmd_drill(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from rollback_bot.drill.pace import speed_problem
    from rollback_bot.drill.run import DrillRefused, run_drill
    from rollback_bot.playbook.durations import parse_duration
    from rollback_bot.playbook.loader import PlaybookInvalid

    try:
        fault_after: timedelta = parse_duration(args.fault_after)
    except ValueError as exc:
        print(f"--fault-after: {exc}", file=sys.stderr)
        return 2
    if args.speed is not None and (problem := speed_problem(args.speed)):
        print(problem, file=sys.stderr)
        return 2
    try:
        return run_drill(
            args.playbook,
            speed=args.speed,
            fault_after=fault_after,
            fault_trigger=args.fault_trigger,
            database_url=args.database,
            long=args.long,
        )
    except PlaybookInvalid as exc:
        for err in exc.errors:
            print(err, file=sys.stderr)
        return 1
    except DrillRefused as exc:
        print(f"drill: {exc}", file=sys.stderr)
        return 2


def cmd_serve(args: argparse.Namespace) -> int:
    from rollback_bot.bootstrap import CannotListen, serve
    from rollback_bot.config import ConfigError, load_settings
    from rollback_bot.playbook.loader import PlaybookInvalid

    if args.scheduler_only and args.no_scheduler:
        print("--scheduler-only and --no-scheduler exclude each other", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        serve(settings, scheduler=not args.no_scheduler, web=not args.scheduler_only)
    except CannotListen as exc:
        print(exc, file=sys.stderr)
        return 2
    except PlaybookInvalid as exc:
        for err in exc.errors:
            print(err, file=sys.stderr)
        if not exc.errors:
            print(f"no playbooks found in {settings.rollback_playbooks}", file=sys.stderr)
        return 1
    return 0


def cmd_db_revision(args: argparse.Namespace) -> int:
    from rollback_bot.store.revisions import new_revision

    path = new_revision(args.message)
    if path is None:
        print("nothing to migrate: the migrations already make what the models say; no file written")
        return 0
    print(f"wrote {path}: read it (Alembic cannot see every change, e.g. a rename), then run the tests")
    return 0


SUFFIXES = {".md": "md", ".markdown": "md", ".json": "json", ".csv": "csv", ".html": "html", ".htm": "html"}


def cmd_export(args: argparse.Namespace) -> int:
    import signal
    from pathlib import Path

    from rollback_bot import outfile
    from rollback_bot.plotting import Plotter

    for signum in (signal.SIGTERM, signal.SIGHUP):  # a stop asked of the export ends it as Ctrl-C does
        signal.signal(signum, _on_terminate)
    out = Path(args.out) if args.out else None
    named = SUFFIXES.get(out.suffix.lower()) if out else None
    if args.format and named and args.format != named:
        print(f"export: --out {out} names {named} but --format is {args.format}; give one of them", file=sys.stderr)
        return 2
    args.format = args.format or named or "md"
    through = None  # a device, FIFO or socket (/dev/stdout, a named pipe): written to as it is, like stdout
    if out is not None:
        where = outfile.where_to(out)
        if isinstance(where, str):
            print(f"export: {where}", file=sys.stderr)
            return 2
        out, through = where
    # charts to draw: matplotlib is imported in a forked process now, on the other core, while this one imports
    # the database layer (it is stopped at once if the export has no charts after all)
    charted = not args.rollout and (args.format == "html" or (args.format == "md" and out is not None))
    plotter = Plotter() if charted else None
    try:
        return _export(args, out, through, plotter)
    finally:
        if plotter is not None:
            plotter.close()


def _on_terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the same end as Ctrl-C: no partial file or helper process left


def _export(args: argparse.Namespace, out: Path | None, through: Path | None, plotter: Plotter | None) -> int:
    """Written to `out` by way of a file of this process's own beside it, renamed over `out` only once complete
    (two exports at once do not share it); or to `through` (a device or pipe), or stdout, as it goes."""
    import shutil
    import tempfile
    from pathlib import Path

    from rollback_bot import outfile
    from rollback_bot.export import Exported, ExportError, export_incident, export_rollout
    from rollback_bot.store.database import Store

    templates = Path(args.templates) if args.templates else None
    partial = outfile.partial_of(out) if out else None
    if out is not None:
        outfile.sweep(out)
    opened, spool, store = None, None, None
    try:  # whatever ends the export (Ctrl-C and SIGTERM included, even as the file is made) leaves no partial file
        try:  # before any work: a file that cannot be written is said at once
            if partial is not None:
                opened = partial.open("x", encoding="utf-8", newline="")
            elif through is not None:
                opened = through.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            print(
                f"export: cannot write --out {out or through}: {exc.strerror or exc} (is its folder there and "
                "writable?)",
                file=sys.stderr,
            )
            return 2
        target: AbstractContextManager[TextIO] = opened if opened is not None else nullcontext(sys.stdout)
        # a draft to a stream is made aside first: a template that fails halfway (a team's own) leaves nothing half
        # written where the reader is, only the one-line error
        if partial is None and args.format in ("md", "html"):
            spool = tempfile.TemporaryFile("w+")  # noqa: SIM115  (closed below, in finally)
        store = Store(args.database, create=False)
        if out is not None and store.file is not None and outfile.is_database(out, store.file):  # the evidence itself
            raise ExportError(f"--out {out} is the database being exported; choose another file")
        with target if spool is None else nullcontext(spool) as fp:
            if args.rollout:
                export_rollout(store, args.incident, args.format, fp)
                done = Exported({}, None)
            else:
                done = export_incident(
                    store,
                    args.incident,
                    args.format,
                    fp,
                    tz=args.tz,
                    out=out,
                    templates=templates,
                    verify=args.verify,
                    background=True,  # this process has one thread: the charts may be drawn in a fork
                    plotter=plotter,
                )
        if spool is not None:
            spool.seek(0)
            with target as fp:
                shutil.copyfileobj(spool, fp, 1 << 16)
    except BaseException as exc:  # whatever ended it, Ctrl-C included: no half-written file left behind
        if partial is not None:
            partial.unlink(missing_ok=True)
        if isinstance(exc, ExportError):
            print(f"export: {exc}", file=sys.stderr)
            return 2
        if not isinstance(exc, OSError) or (partial is None and through is None):
            raise  # stdout: a reader gone away (`| head`) is main's to end quietly
        if exc.filename not in (None, str(partial)):  # not the file written (a template, say)
            print(f"export: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        elif through is not None:
            print(f"export: cannot write {through}: {exc.strerror or exc}; the export is incomplete", file=sys.stderr)
        else:  # a full disk, say
            print(f"export: cannot write {out}: {exc.strerror or exc}; nothing was written", file=sys.stderr)
        return 2
    finally:
        if store is not None:
            store.close()
        if spool is not None:
            spool.close()
        if opened is not None:
            opened.close()  # where a failure came before it was written to
    if out is not None and partial is not None:
        written: list[Path] = []
        try:  # the charts first: the export itself appears only once complete, and with its charts
            for name, data in done.files.items():
                written.append(out.parent / name)
                written[-1].write_bytes(data)
            outfile.keep_mode(out, partial)
            partial.replace(out)
        except BaseException as exc:  # a full disk, say; or a stop asked for: neither the export nor its charts
            for path in [partial, *written]:
                path.unlink(missing_ok=True)
            if not isinstance(exc, OSError):
                raise
            print(
                f"export: cannot write {exc.filename or out}: {exc.strerror or exc}; nothing was written",
                file=sys.stderr,
            )
            return 2
        print(f"wrote {out}" + (f" and {len(done.files)} chart(s)" if done.files else ""), file=sys.stderr)
    if done.broken is not None:  # the export is written all the same (it is the evidence), and says so too
        print(f"export: the timeline's chain is BROKEN: {done.broken}", file=sys.stderr)
        return 1
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from rollback_bot.store.database import Store
    from rollback_bot.store.verify import chains, verify_chain

    store = Store(args.database, create=False)
    try:
        with store.session() as s:
            # a long chain's halves are checked at once, on the two cores
            reports = [verify_chain(s, chain, store.engine) for chain in chains(s, args.incident)]
    finally:
        store.close()
    if args.incident is not None and reports and reports[0].events == 0:
        print(f"no incident #{args.incident} in the database", file=sys.stderr)
        return 2
    if not reports:  # said, not silent: a database with nothing in it (the wrong one?) checks out trivially
        print(f"no events in {store.shown_url}: nothing to check", file=sys.stderr)
    for report in reports:
        print(report, file=sys.stdout if report.ok else sys.stderr)
    return 0 if all(r.ok for r in reports) else 1


def cmd_playbook_history(args: argparse.Namespace) -> int:
    """The versions of a playbook incidents ran on; with --diff A B, what changed between two of them."""
    import difflib
    from pathlib import Path

    from rollback_bot.store.database import Store
    from rollback_bot.store.incidents import playbook_versions

    store = Store(args.database, create=False)
    try:
        with store.session() as s:
            versions = playbook_versions(s, playbook=args.name)
    finally:
        store.close()
    if not versions:
        print(f"no incident of playbook {args.name} in the database", file=sys.stderr)
        return 2
    if not args.diff:
        print(f"Versions of playbook {args.name} that incidents ran on, oldest first:")
        for v in versions:
            ids = ", ".join(f"#{i}" for i in v.incidents)
            first, last = (f"{t:%Y-%m-%d %H:%M}" if t else "-" for t in (v.first, v.last))
            print(f"  {v.version}  {first} to {last} UTC  {len(v.incidents)} incident(s): {ids}  ({v.path})")
        print("Compare two: rollback-bot playbook history NAME --diff VERSION VERSION|FILE")
        return 0
    texts: list[tuple[str, str]] = []
    for ref in args.diff:
        found = [v for v in versions if v.version.startswith(ref)] if len(ref) >= 4 else []
        if len(found) == 1:
            texts.append((f"{args.name}@{found[0].version} ({found[0].path})", found[0].text))
        elif len(found) > 1:
            print(f"version {ref!r} is ambiguous: {', '.join(v.version for v in found)}", file=sys.stderr)
            return 2
        elif Path(ref).is_file():
            texts.append((ref, Path(ref).read_text()))
        else:
            known = ", ".join(v.version for v in versions)
            print(f"no version {ref!r} of {args.name} (known: {known}) and no such file", file=sys.stderr)
            return 2
    (a_name, a), (b_name, b) = texts
    diff = difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True), a_name, b_name)
    sys.stdout.writelines(diff)
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from rollback_bot.backtest.run import Options, run
    from rollback_bot.playbook.loader import PlaybookInvalid

    if args.incident is not None:
        return _what_if(args)
    if not args.start or not args.end:
        print("backtest: give --from and --to (or --incident N to replay a past incident)", file=sys.stderr)
        return 2

    opts = Options(
        playbook=args.playbook,
        start=args.start,
        end=args.end,
        readings=args.readings,
        incidents=args.incidents,
        format=args.format,
        charts=args.charts,
        prometheus=args.prometheus,
        use_prometheus=not args.no_prometheus,
        timeout=args.timeout,
        window=args.window,
        stage=args.stage,
    )
    try:
        return run(opts, sys.stdout)
    except PlaybookInvalid as exc:
        for err in exc.errors:
            print(err, file=sys.stderr)
        return 1


def _what_if(args: argparse.Namespace) -> int:
    from rollback_bot.backtest.whatif import WhatIfError, what_if, write
    from rollback_bot.checking import load_checked
    from rollback_bot.playbook.loader import PlaybookInvalid
    from rollback_bot.store.database import Store

    if args.format == "csv":
        print("backtest --incident: --format table or json", file=sys.stderr)
        return 2
    try:
        edited = load_checked(args.playbook, env=False).playbook  # a replay sends nothing: no ${VAR} needed
    except PlaybookInvalid as exc:
        for err in exc.errors:
            print(err, file=sys.stderr)
        return 1
    store = Store(args.database, create=False)
    try:
        result = what_if(store, args.incident, edited, args.days)
    except WhatIfError as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    write(args.format, result, sys.stdout)
    return 0


EPILOG = """\
start here:
  rollback-bot init DIR            write a starter playbook and templates to edit
  rollback-bot check DIR           validate them (every problem at once, as file:line)
  rollback-bot drill DIR/x.yaml    rehearse the whole ladder against a sandboxed model
  rollback-bot serve               run the bot (settings from the environment: see bot/env.example)

logs: LOG_LEVEL (default INFO for serve, WARNING otherwise), LOG_FORMAT=json for JSON lines.
'rollback-bot COMMAND --help' tells more about each command."""


def build_parser() -> argparse.ArgumentParser:
    from rollback_bot import __version__

    parser = argparse.ArgumentParser(
        prog="rollback-bot",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rollback-bot {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="write a starter playbook and the built-in templates into a folder, to edit")
    init.add_argument("dir", nargs="?", default=".", help="where (default: the current folder)")
    init.add_argument("--force", action="store_true", help="overwrite files that exist already")
    init.set_defaults(func=cmd_init)

    check = sub.add_parser("check", help="validate playbooks and their templates; errors as file:line: message")
    check.add_argument(
        "paths", nargs="*", help="playbook files or folders (default: playbooks/, else the current folder)"
    )
    check.add_argument(
        "--no-env",
        action="store_true",
        help="outside production (e.g. CI): do not require the ${VAR}s webhooks use to be set",
    )
    check.set_defaults(func=cmd_check)

    drill = sub.add_parser(
        "drill",
        help="run the whole ladder (or, for a playbook with a rollout, the rollout) against a sandboxed model on a "
        "compressed clock",
    )
    drill.add_argument("playbook")
    drill.add_argument(
        "--speed",
        type=float,
        help="clock speed-up, 1 to 5000 (default for a ladder: the fastest, up to 1440 or 24h in 1 min, at which "
        "the playbook's polls keep their `every`; 600 for a rollout)",
    )
    drill.add_argument(
        "--long", action="store_true", help="run a ladder drill that takes more than an hour of real time"
    )
    drill.add_argument(
        "--fault-after",
        default="20m",
        help="drill time before the fault is injected (a ladder drill; a rollout's fault shows at its stage of 50%%)",
    )
    drill.add_argument(
        "--fault-trigger",
        metavar="TRIGGER",
        help="the trigger the fault makes fire, for a playbook the built-in model does not play (default: the first "
        "critical one)",
    )
    drill.add_argument("--database", help="keep the drill's timeline in this database URL (default: a temp file)")
    drill.set_defaults(func=cmd_drill)

    export = sub.add_parser("export", help="an incident's post-mortem record: md, json, csv or html")
    export.add_argument("incident", type=incident_number)
    export.add_argument(
        "--format", choices=["md", "json", "csv", "html"], help="default: from --out's extension, else md"
    )
    export.add_argument("--rollout", action="store_true", help="N is a rollout: its stages, verdicts, holds (md, json)")
    export.add_argument("--out", help="file to write (Markdown charts are written beside it)")
    export.add_argument("--tz", default="UTC", help="time zone for times shown (IANA name, default UTC)")
    export.add_argument("--templates", help="folder with postmortem.md.j2 / .html.j2 (default: the playbook's)")
    export.add_argument(
        "--verify",
        action="store_true",
        help="recompute the audit chain; exit 1 if it is broken (the export is still written)",
    )
    export.add_argument("--database", help="database URL (default: DATABASE_URL)")
    export.set_defaults(func=cmd_export)

    audit = sub.add_parser("audit", help="check the tamper-evident timeline")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="recompute every hash; name the first event that does not match")
    verify.add_argument("incident", nargs="?", type=incident_number, help="one incident (default: all)")
    verify.add_argument("--database", help="database URL (default: DATABASE_URL)")
    verify.set_defaults(func=cmd_audit_verify)

    playbook = sub.add_parser("playbook", help="the playbook versions incidents ran on")
    playbook_sub = playbook.add_subparsers(dest="playbook_command", required=True)
    history = playbook_sub.add_parser("history", help="list the versions incidents ran on; --diff A B compares two")
    history.add_argument("name", help="the playbook's name")
    history.add_argument(
        "--diff", nargs=2, metavar=("A", "B"), help="two versions (a prefix of 4+ characters) or a playbook file"
    )
    history.add_argument("--database", help="database URL (default: DATABASE_URL)")
    history.set_defaults(func=cmd_playbook_history)

    backtest = sub.add_parser(
        "backtest",
        help="replay history through the playbook's triggers (when each would have fired and cleared, the incidents) "
        "and a rollout's gate (a verdict per window)",
    )
    backtest.add_argument("playbook")
    backtest.add_argument("--from", dest="start", help="start (ISO 8601, UTC if no zone; or Unix s)")
    backtest.add_argument("--to", dest="end", help="end (ISO 8601, UTC if no zone; or Unix s)")
    backtest.add_argument(
        "--incident",
        type=incident_number,
        help="what if: replay the readings stored around incident N under the playbook as it was and as it is now",
    )
    backtest.add_argument("--days", type=float, default=3.0, help="with --incident: days around it (default 3)")
    backtest.add_argument("--database", help="with --incident: database URL (default: DATABASE_URL)")
    backtest.add_argument(
        "--readings", help="CSV time,signal,value or JSON of readings (JSON sources, or no Prometheus history)"
    )
    backtest.add_argument("--incidents", help="known bad periods, CSV start,end[,label] or JSON: delay, misses")
    backtest.add_argument("--format", choices=["table", "json", "csv"], default="table")
    backtest.add_argument("--charts", metavar="DIR", help="write a PNG per trigger into DIR")
    backtest.add_argument("--prometheus", metavar="URL", help="Prometheus base URL (default: the playbook's)")
    backtest.add_argument(
        "--no-prometheus", action="store_true", help="query no Prometheus: signals without readings are no data"
    )
    backtest.add_argument("--timeout", type=float, default=30.0, help="seconds per range query (default 30)")
    backtest.add_argument(
        "--window", default="7d", help="a rollout's gate: one verdict (GO/HOLD/ROLLBACK) per window (default 7d)"
    )
    backtest.add_argument(
        "--stage", type=int, default=1, help="a rollout's gate: judge each window as this stage (default 1)"
    )
    backtest.set_defaults(func=cmd_backtest)

    db = sub.add_parser("db", help="for maintainers: the database schema's migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    revision = db_sub.add_parser(
        "revision", help="write the next migration: what the models have that the newest migration does not"
    )
    revision.add_argument("-m", "--message", required=True, help="what it changes, e.g. 'add incident labels'")
    revision.set_defaults(func=cmd_db_revision)

    serve = sub.add_parser("serve", help="run the Slack app and the scheduler (settings from the environment)")
    serve.add_argument("--no-scheduler", action="store_true", help="web only (e.g. under gunicorn)")
    serve.add_argument("--scheduler-only", action="store_true", help="polling, ladder and Slack sync, no web")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rollback_bot.errors import DatabaseUnreachable
    from rollback_bot.logs import LoggingProblem, configure

    args = build_parser().parse_args(argv)
    try:
        configure(logging.INFO if args.command == "serve" else logging.WARNING, verbose=args.verbose)
    except LoggingProblem as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except DatabaseUnreachable as exc:
        print(exc, file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rollback-bot export 1 | head`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush of stdout at exit must not fail again
        return 128 + 13  # as a program killed by SIGPIPE
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback (its forked helpers stop with it)
        print(f"rollback-bot {args.command}: interrupted", file=sys.stderr)
        return 128 + 2  # as a program killed by SIGINT


if __name__ == "__main__":
    sys.exit(main())
