"""Read a playbook file into a validated `Playbook`, or a list of `file:line: message` errors."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rollback_bot.playbook.conditions import signals_in
from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.models import BUILTIN_SIGNALS, VERSION, Playbook
from rollback_bot.playbook.partial import Cut, Failure, cut_out
from rollback_bot.playbook.yamlsource import MAX_BYTES, TOO_LARGE, LineMap, YamlSyntaxError, load_with_lines


@dataclass(frozen=True)
class PlaybookError:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PlaybookInvalid(Exception):
    """Every error found. `rest`: the playbook without its failing parts, when they could be cut out (so
    `check` can also check what the rest refers to: its templates)."""

    def __init__(self, errors: list[PlaybookError], rest: LoadedPlaybook | None = None) -> None:
        super().__init__("\n".join(map(str, errors)))
        self.errors = errors
        self.rest = rest


@dataclass(frozen=True)
class LoadedPlaybook:
    """A playbook with where it came from; `version` pins the exact text an incident was opened under."""

    playbook: Playbook
    source: str
    text: str
    lines: LineMap

    @property
    def version(self) -> str:
        return version_of(self.text)

    @property
    def templates_dir(self) -> Path:
        return (Path(self.source).parent / self.playbook.templates).resolve()


def version_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def load_playbook(path: str | Path) -> LoadedPlaybook:
    p = Path(path)
    try:
        with p.open("rb") as fp:
            raw = fp.read(MAX_BYTES + 1)  # never more: the path may name a device or a huge file
    except OSError as exc:
        raise PlaybookInvalid([PlaybookError(str(p), 1, f"cannot read: {exc.strerror}")]) from None
    if len(raw) > MAX_BYTES:
        raise PlaybookInvalid([PlaybookError(str(p), 1, TOO_LARGE)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise PlaybookInvalid([PlaybookError(str(p), line, "not UTF-8 text; save the file as UTF-8")]) from None
    return parse_playbook(text, str(p))


def parse_playbook(text: str, source: str = "<playbook>") -> LoadedPlaybook:
    """Parse and validate; raises PlaybookInvalid carrying every error found, each with its line."""
    try:
        data, lines = load_with_lines(text)
    except YamlSyntaxError as exc:
        raise PlaybookInvalid([PlaybookError(source, exc.line, exc.message)]) from None
    if not isinstance(data, dict):
        raise PlaybookInvalid([PlaybookError(source, 1, "a playbook is a mapping with name, signals, ...")])
    try:
        playbook = Playbook.model_validate(data, context=_context(source))
    except ValidationError as exc:
        rest, more = _the_rest(data, exc, source, text, lines)
        errors = _pydantic_errors(exc, source, lines) + more
        raise PlaybookInvalid(sorted(errors, key=lambda e: e.line), rest) from None
    errors = _semantic(playbook, source, lines, Cut())
    if errors:
        raise PlaybookInvalid(sorted(errors, key=lambda e: e.line))
    return LoadedPlaybook(playbook, source, text, lines)


def _the_rest(
    data: dict[str, Any], exc: ValidationError, source: str, text: str, lines: LineMap
) -> tuple[LoadedPlaybook | None, list[PlaybookError]]:
    """The playbook without the parts that failed, and the problems of the rest (unknown names, windows), each
    at its line in the file; nothing the cut itself caused."""
    failures: list[Failure] = [(_path(err), err["type"], True) for err in exc.errors()]  # the fields alone first
    found: list[dict[str, Any]] = []  # problems the rest shows of its own (checks that run once the fields pass)
    for _ in range(5):  # each round cuts more; a playbook is rarely more than two deep
        cut = Cut()
        rest = cut_out(data, failures, cut)
        if rest is None:
            break
        try:
            playbook = Playbook.model_validate(rest, context=_context(source))
        except ValidationError as again:
            for err in again.errors():
                moved: dict[str, Any] = {**err, "loc": cut.original(_path(err))}
                own = not cut.covers(moved["loc"], str(moved["msg"]))
                if own:
                    found.append(moved)
                # an entry that fails without the field cut from it goes whole; a problem of its own, as little
                failures.append((moved["loc"], moved["type"], own))
            continue
        return LoadedPlaybook(playbook, source, text, lines), _errors(found, source, lines) + _semantic(
            playbook, source, lines, cut
        )
    return None, _errors(found, source, lines)


def _semantic(playbook: Playbook, source: str, lines: LineMap, cut: Cut) -> list[PlaybookError]:
    """The whole-playbook checks, each at its line in the file; none the cut (if any) caused."""
    errors = []
    for where, msg in semantic_errors(playbook):
        path = cut.original(where)
        if cut.covers(path, msg):
            continue
        if path[0] in DEFAULTED and path[:2] not in lines.lines:  # the file relies on a default
            msg += f" (it is the default of {'.'.join(map(str, path[:2]))}; define the role or set that list)"
        errors.append(PlaybookError(source, lines.line_of(path), msg))
    return errors


def _path(err: Any) -> tuple[str | int, ...]:
    """pydantic's location of an error as the document's path (no union member or validator names)."""
    return tuple(_ALIASES.get(str(p), p) for p in err["loc"] if not str(p).startswith("function-"))


def _context(source: str) -> dict[str, str]:
    """Relative file paths inside a playbook (tls.ca_file) are relative to the playbook's folder."""
    return {} if source.startswith("<") else {"folder": str(Path(source).parent.resolve())}


_ALIASES = {"for_": "for", "json_path": "json"}


def _pydantic_errors(exc: ValidationError, source: str, lines: LineMap) -> list[PlaybookError]:
    return sorted(_errors([{**err, "loc": _path(err)} for err in exc.errors()], source, lines), key=lambda e: e.line)


# what a `pattern` asks for, in words
PATTERNS = {
    r"^[a-z0-9][a-z0-9_-]*$": "use lowercase letters, digits, '-' and '_', starting with a letter or digit "
    "(e.g. 'revert-traffic')",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "use a label name: letters, digits and '_', not starting with a digit "
    "(e.g. 'urgency')",
    r"^[UW][A-Z0-9]+$": "use a Slack user ID, e.g. U024BE7LH (in Slack: the person's profile, ⋮, Copy member ID)",
    r"^S[A-Z0-9]+$": "use a Slack user group ID, e.g. S0614TZR7 (in Slack: the group's page, ⋮, Copy group ID)",
}

# pydantic's words for a value of the wrong kind, in ours: what was expected
KINDS = {
    "string_type": "text (put it in quotes where YAML reads it as a number, a date or true/false)",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list, e.g. [a, b]",
    "dict_type": "a mapping (name: value lines)",
    "model_type": "a mapping (name: value lines)",
    "model_attributes_type": "a mapping (name: value lines)",
    "finite_number": "a finite number (not .nan or .inf)",
}
# pydantic's words for a bound, in ours: {0} is the bound
BOUNDS = {
    "greater_than": "must be more than {0}",
    "greater_than_equal": "must be at least {0}",
    "less_than": "must be less than {0}",
    "less_than_equal": "must be at most {0}",
    "string_too_short": "needs at least {0} character(s)",
    "string_too_long": "has room for {0} characters at most",
    "too_short": "needs at least {0} item(s)",
    "too_long": "has room for {0} items at most",
}
BOUND_KEYS = ("gt", "ge", "lt", "le", "min_length", "max_length")


def bound_in_words(err: Any) -> str:
    """A pydantic error of a type in BOUNDS, as the bound it broke: 'must be at most 65535'."""
    ctx = err.get("ctx") or {}
    return BOUNDS[err["type"]].format(next((ctx[k] for k in BOUND_KEYS if k in ctx), "?"))


def _errors(errs: Iterable[Any], source: str, lines: LineMap) -> list[PlaybookError]:
    out = []
    for err in errs:
        path = err["loc"]
        where = ".".join(str(p) for p in path) or "playbook"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field; check its spelling against playbooks/README.md"
        elif err["type"] == "literal_error":
            expected = str((err.get("ctx") or {}).get("expected", "")).replace("'", "")
            msg = f"{err.get('input')!r} is not one of: {expected.replace(' or ', ', ')}"
        elif err["type"] in KINDS:
            msg = f"expected {KINDS[err['type']]}, got {err.get('input')!r}"
        elif err["type"] in BOUNDS:
            given = err.get("input")
            shown = f"{given!r}" if not isinstance(given, list | dict) or len(repr(given)) < 60 else "this"
            msg = f"{shown} {bound_in_words(err)}"
        elif err["type"] == "string_pattern_mismatch":
            pattern = str((err.get("ctx") or {}).get("pattern", ""))
            msg = f"{err.get('input')!r} is not allowed here: " + PATTERNS.get(
                pattern, f"it must match the regular expression {pattern}"
            )
        out.append(PlaybookError(source, lines.line_of(path), f"{where}: {msg}"))
    return out


Issue = tuple[tuple[str | int, ...], str]
DEFAULTED = ("acknowledge", "resolve", "hold", "reminders")


def semantic_errors(pb: Playbook) -> Iterable[Issue]:
    """Checks that need the whole playbook: names that must exist, windows that must tile."""
    known = set(pb.signals) | set(BUILTIN_SIGNALS)
    for name, spec in pb.signals.items():
        if spec.prometheus is not None and not pb.sources.prometheus:
            yield ("signals", name), f"signal '{name}' queries Prometheus but sources.prometheus is not set"
    for name, trig in pb.triggers.items():
        form = next(f for f in ("when", "all", "any", "of", "kpi") if getattr(trig, f) is not None)
        fast = set(signals_in(trig.fail_fast)) if trig.fail_fast is not None else set()
        for sig in trig.signals:
            if sig not in known:
                yield (
                    ("triggers", name, "fail_fast" if sig in fast else form),
                    f"trigger '{name}' uses unknown signal '{sig}'; define it under signals",
                )
    for role, members in pb.roles.items():
        if not members.users and not members.groups:
            yield ("roles", role), f"role '{role}' has no users and no groups; nobody could act in it"
    role_lists = (
        (("acknowledge", "requires"), pb.acknowledge.requires),
        (("acknowledge", "escalate"), pb.acknowledge.escalate),
        (("resolve", "requires"), pb.resolve.requires),
        (("hold", "requires"), pb.hold.requires),
        (("reminders", "escalate"), pb.reminders.escalate),
    )
    for where, roles in role_lists:
        for i, role in enumerate(roles):
            if role not in pb.roles:
                yield (*where, i), f"role '{role}' is used but not defined under roles"
    if pb.rollout is not None:
        yield from _rollout_errors(pb)
    if pb.panic_run is not None:
        yield from _panic_run_errors(pb)
    for name, trig in pb.triggers.items():
        for sig in trig.signals:
            if sig in pb.signals and pb.signals[sig].compared:
                yield ("triggers", name), f"trigger '{name}' reads '{sig}', a compared signal: it is for the rollout"
            elif sig in pb.signals and pb.signals[sig].segments:  # read per segment, it has no one value to test
                yield (
                    ("triggers", name),
                    f"trigger '{name}' reads '{sig}', which is read per segment (segments:): triggers test one value; "
                    "define a signal without segments for the trigger",
                )
    seen_actions: dict[str, int] = {}
    seen_steps: set[str] = set()
    expected_start = format_duration(pb.ladder[0].start)
    for i, step in enumerate(pb.ladder):
        if step.name.strip().lower() in seen_steps:  # the alert, the thread and the exports name steps
            yield ("ladder", i, "name"), f"step name '{step.name}' is used twice: name each step once"
        seen_steps.add(step.name.strip().lower())
        if i == 0 and step.start:
            yield ("ladder", 0, "window"), f"the first step must start at 0h, not {expected_start}"
        if i > 0:
            prev = pb.ladder[i - 1]
            if step.start < prev.end:
                yield (
                    ("ladder", i, "window"),
                    f"window {step.window_text()} overlaps the previous step ({prev.window_text()})",
                )
            elif step.start > prev.end:
                yield (
                    ("ladder", i, "window"),
                    f"window {step.window_text()} leaves a gap after the previous step ({prev.window_text()})",
                )
        for j, cmp in enumerate(step.watch):
            if cmp.signal not in known:
                yield (
                    ("ladder", i, "watch", j),
                    f"watch uses unknown signal '{cmp.signal}'; define it under signals",
                )
        for j, action in enumerate(step.actions):
            if action.id in seen_actions:
                yield ("ladder", i, "actions", j, "id"), f"action id '{action.id}' is used twice"
            seen_actions[action.id] = i
            for k, role in enumerate(action.requires):
                if role not in pb.roles:
                    yield (
                        ("ladder", i, "actions", j, "requires", k),
                        f"role '{role}' is used but not defined under roles",
                    )
            for k, role in enumerate(action.lapse.escalate):
                if role not in pb.roles:
                    yield (
                        ("ladder", i, "actions", j, "lapse", "escalate", k),
                        f"role '{role}' is used but not defined under roles",
                    )
            for k, cmp in enumerate(action.lapse.when):
                if cmp.signal not in known:
                    yield (
                        ("ladder", i, "actions", j, "lapse", "when", k),
                        f"lapse uses unknown signal '{cmp.signal}'; define it under signals",
                    )


VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,62}\Z")  # URLs quote / and +; PromQL strings take them


def _rollout_errors(pb: Playbook) -> Iterable[Issue]:
    """A rollout's names must exist, and what it compares must be read per version."""
    ro = pb.rollout
    assert ro is not None
    for sig in ro.signals:
        if sig in pb.signals and pb.signals[sig].alertmanager is not None:
            yield (
                ("signals", sig),
                f"the rollout reads '{sig}', an alertmanager signal: a rollout reads its signals per version, "
                "on demand; use a prometheus signal with {version} in its query",
            )

    def compared(sig: str, where: tuple[str | int, ...], what: str) -> Iterable[Issue]:
        spec = pb.signals.get(sig)
        if spec is None:
            yield where, f"{what} uses unknown signal '{sig}'; define it under signals"
        elif not spec.compared:
            yield (
                where,
                (
                    f"{what} compares '{sig}' between baseline and candidate, but the signal is read once: "
                    f"put {VERSION} in its query, URL or json path"
                ),
            )

    for which in ("baseline", "candidate"):  # what {version} becomes inside queries, URLs and json paths
        name = getattr(ro, which)
        if not VERSION_NAME.match(name):
            yield (
                ("rollout", which),
                f"{which} '{name}' would break the queries and URLs it is put into: use letters, digits, "
                "'.', '_', '-', ':', '/' or '+'",
            )
        elif "." in name and any(VERSION in (spec.json_path or "") for spec in pb.signals.values()):
            yield (
                ("rollout", which),
                f"{which} '{name}' has a '.', which a json path reads as a step: rename it, or keep {VERSION} "
                "out of json paths (put it in the URL)",
            )
    yield from compared(ro.sample, ("rollout", "sample"), "the rollout's sample")
    if ro.sample in pb.signals and pb.signals[ro.sample].segments:
        yield ("rollout", "sample"), f"the sample '{ro.sample}' must not have segments: it is one count"
    for sig in ro.gate.kpi:
        yield from compared(sig, ("rollout", "gate", "kpi", sig), "the gate's kpi")
    for kind in ("guardrails", "holds"):
        for i, rule in enumerate(getattr(ro, kind)):
            spec = pb.signals.get(rule.signal)
            if rule.above is not None:  # the candidate's own value: any signal will do
                if spec is None:
                    yield (
                        ("rollout", kind, i, "signal"),
                        f"{kind[:-1]} uses unknown signal '{rule.signal}'; define it under signals",
                    )
            else:
                yield from compared(rule.signal, ("rollout", kind, i, "signal"), kind[:-1])
    for i, sig in enumerate(ro.diagnostics):
        if sig not in pb.signals:
            yield ("rollout", "diagnostics", i), f"diagnostic uses unknown signal '{sig}'; define it under signals"
    for kind in ("advance", "hold", "rollback"):
        for i, role in enumerate(getattr(ro, kind).requires):
            if role not in pb.roles:
                yield ("rollout", kind, "requires", i), f"role '{role}' is used but not defined under roles"


def _panic_run_errors(pb: Playbook) -> Iterable[Issue]:
    """A panic run reads each signal once, now, outside any incident: a plain signal it can test."""
    assert pb.panic_run is not None
    for i, check in enumerate(pb.panic_run.checks):
        spec = pb.signals.get(check.signal)
        where = ("panic_run", "checks", i)
        if spec is None:
            yield where, f"panic run check uses unknown signal '{check.signal}'; define it under signals"
        elif spec.builtin is not None:
            yield (
                where,
                f"panic run check reads '{check.signal}', a builtin signal: it has no value outside an incident",
            )
        elif spec.compared:
            yield where, f"panic run check reads '{check.signal}', a compared signal: it is for the rollout"
        elif spec.alertmanager is not None:
            yield (
                where,
                f"panic run check reads '{check.signal}', an alertmanager signal: it cannot be read on demand; "
                "query the alert's expression with a prometheus signal",
            )
        elif spec.segments:
            yield where, f"panic run check reads '{check.signal}', which is read per segment: a check tests one value"
    for i, role in enumerate(pb.panic_run.acknowledge):
        if role not in pb.roles:
            yield ("panic_run", "acknowledge", i), f"role '{role}' is used but not defined under roles"
