"""What is left of a playbook once the parts that failed validation are cut out: the checks that need a whole
playbook (names that must exist, windows that must tile, templates that must render) then run over the rest,
so `check` reports every problem in one run instead of one round of mistakes at a time."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str | int, ...]

NAMED = ("signals", "triggers", "roles")  # mappings of named entries: a failing entry is cut out whole
REQUIRED = (*NAMED, "ladder")  # the sections a playbook cannot do without; the others have defaults
STEP_PARTS = ("actions", "comms", "watch")  # lists inside a ladder step: a failing item is cut out whole
# required text fields that nothing refers to: a failing one is replaced by a stand-in
STAND_INS = {"name": "playbook", "service": "-", "channel": "-"}
# fields whose failing value is replaced by one that passes, so what holds them is still checked: a step's
# window (how the windows tile is then not judged), and a URL (a webhook's, a source's)
LEAF_STAND_INS = {"window": "0h-1h", "url": "http://stand-in.invalid"}

Failure = tuple[Path, str, bool]  # where, pydantic's error type, and whether to cut as little as can be


@dataclass
class Cut:
    """What was cut out (paths), and the names of cut signals, triggers and roles."""

    paths: list[Path] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    steps: bool = False  # a whole ladder step went: how the windows tile says nothing
    kept: dict[Path, list[int]] = field(default_factory=dict)  # a list cut into: the indexes that are left

    def original(self, path: Path) -> Path:
        """Where a path of the rest was in the file (items cut from a list move the later ones up)."""
        out: list[str | int] = []
        for part in path:
            kept = self.kept.get(tuple(out))
            out.append(kept[part] if kept is not None and isinstance(part, int) and part < len(kept) else part)
        return tuple(out)

    def covers(self, path: Path, message: str) -> bool:
        """Whether an issue found in the rest is only a consequence of the cut (not a problem of its own)."""
        if any(path[: len(p)] == p or p[: len(path)] == path for p in self.paths):
            return True
        if any(".".join(map(str, p)) in message for p in self.paths if len(p) > 1):  # "sources.prometheus is not set"
            return True
        if any(f"{p[0]}." in message for p in self.paths if len(p) == 1):  # a whole section: "sources.prometheus"
            return True
        if self.steps and len(path) >= 3 and path[0] == "ladder" and path[2] == "window":
            return True
        return any(f"'{name}'" in message for name in self.names)


def cut_out(data: dict[str, Any], failures: Iterable[Failure], cut: Cut) -> dict[str, Any] | None:
    """A copy of `data` without what failed, or None when a failure cannot be cut out (the rest would not be
    a playbook). A `fine` failure takes only the field that failed (its default stands in), so the rest of its
    entry or section is still checked; where the entry then fails without it, the caller cuts again, whole."""
    out = copy.deepcopy(data)
    targets: list[Path] = []
    for path, kind, fine in failures:
        holder = _at(out, path[:-1]) if path else None
        if fine and kind != "extra_forbidden" and path and path[-1] in LEAF_STAND_INS:
            stand_in = LEAF_STAND_INS[str(path[-1])]
            if isinstance(holder, str) and len(path) >= 2:  # a mapping written as its URL alone: `prometheus: URL`
                path, holder = path[:-1], _at(out, path[:-2])
            if isinstance(holder, dict):
                holder[str(path[-1])] = stand_in
                cut.paths.append(path)  # what is said about the stand-in is not said
                cut.steps = cut.steps or path[-1] == "window"
                continue
        target = _target(path, kind, fine)
        if fine and target is not None and not _exists(out, target):  # not there as written (a URL for a mapping)
            target = _target(path, kind, False)
        if target is None:
            return None
        if len(target) == 1 and target[0] in STAND_INS:
            out[str(target[0])] = STAND_INS[str(target[0])]
            continue
        targets.append(target)
        if target[0] in NAMED and len(target) == 2:
            cut.names.add(str(target[1]))
        if target[0] == "ladder" and len(target) == 2:
            cut.steps = True
    # deepest first, and the higher index first within a list, so no deletion moves another's target
    for target in sorted(set(targets), key=lambda t: (len(t), [str(p).zfill(9) for p in t]), reverse=True):
        length = _length(out, target[:-1])
        if not _delete(out, target):
            return None
        cut.paths.append(target)
        if isinstance(target[-1], int) and length is not None:
            kept = cut.kept.setdefault(target[:-1], list(range(length)))
            kept.remove(target[-1])
    return out


def _at(doc: Any, path: Path) -> Any:
    for part in path:
        try:
            doc = doc[part]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


def _exists(doc: Any, path: Path) -> bool:
    holder = _at(doc, path[:-1])
    if isinstance(holder, dict):
        return path[-1] in holder
    return isinstance(holder, list) and isinstance(path[-1], int) and 0 <= path[-1] < len(holder)


def _length(doc: Any, path: Path) -> int | None:
    found = _at(doc, path)
    return len(found) if isinstance(found, list) else None


def _target(path: Path, kind: str, fine: bool) -> Path | None:
    """What to cut for a failure at `path`: `fine`, the field itself (where it is missing, what should hold it),
    no shallower than a named entry's or a step's field; else the whole entry, step item, step or section."""
    if not path:
        return None
    if kind == "extra_forbidden":  # an unknown field: it goes, and nothing else
        return path
    head = path[0]
    if head in STAND_INS and len(path) == 1:
        return path
    if fine:
        target = path[:-1] if kind == "missing" else path
        if len(target) >= (3 if head in REQUIRED else 1):
            return target
    if head in NAMED and len(path) >= 2:
        return path[:2]
    if head == "ladder" and len(path) >= 4 and path[2] in STEP_PARTS and isinstance(path[3], int):
        return path[:4]
    if head == "ladder" and len(path) >= 2 and isinstance(path[1], int):
        return path[:2]
    if head not in REQUIRED:  # an optional section: its defaults stand in
        item = next((i for i, part in enumerate(path) if isinstance(part, int)), None)
        return path[: item + 1] if item is not None else path[:1]  # a list's item (a rollout's hold), else all
    return None


def _delete(doc: Any, path: Path) -> bool:
    for part in path[:-1]:
        try:
            doc = doc[part]
        except (KeyError, IndexError, TypeError):
            return False
    try:
        del doc[path[-1]]
    except (KeyError, IndexError, TypeError):
        return False
    return True
