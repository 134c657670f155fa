"""YAML loading that remembers the line of every key and list item, so errors can say file:line; and that
refuses, quickly, what no playbook needs: control characters, huge or deeply nested documents, alias bombs."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

Path = tuple[str | int, ...]

MAX_BYTES = 1 << 20  # 1 MiB; the shipped playbook is 9 KB
MAX_DEPTH = 64  # nested mappings and lists, aliases followed
MAX_NODES = 20_000  # values once aliases are expanded; the shipped playbook has about 600
TOO_LARGE = f"the file is larger than {MAX_BYTES >> 20} MiB; a playbook needs far less"

# Characters that make no sense in a playbook: C0/C1 controls but tab and line breaks, DEL, lone surrogates,
# non-characters, line separators an editor does not count as lines, and bidi controls that make text read
# otherwise than it parses. A BOM is allowed as the first character only.
_BAD_CHAR = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufeff\ufffe\uffff\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


@dataclass
class LineMap:
    """Maps a path inside the document (keys and list indexes) to its 1-based line."""

    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), 1)


class YamlSyntaxError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def line_at(text: str, index: int) -> int:
    return len(_LINE_BREAK.findall(text, 0, index)) + 1


def _line(node_or_event: yaml.Node | yaml.Event) -> int:
    mark = node_or_event.start_mark
    return mark.line + 1 if mark is not None else 1


class _LimitedComposer(Composer):
    """PyYAML's composer, counting nodes (aliases included) and depth as it goes: it stops at the limit
    instead of recursing until Python's stack runs out."""

    _depth = 0
    _count = 0
    peek_event: Callable[[], yaml.Event]  # the parser's, mixed in beside

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        self._count += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlSyntaxError(_line(self.peek_event()), _too_deep())
            if self._count > MAX_NODES:
                raise YamlSyntaxError(_line(self.peek_event()), _too_many())
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


try:  # libyaml scans a megabyte in milliseconds, where pure Python takes a second
    from yaml._yaml import CParser

    class _Loader(_LimitedComposer, CParser, SafeConstructor, Resolver):
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Loader(Reader, Scanner, Parser, _LimitedComposer, SafeConstructor, Resolver):  # type: ignore[no-redef]
        def __init__(self, text: str) -> None:
            Reader.__init__(self, text)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep (or an alias that contains itself); flatten the document"


def _too_many() -> str:
    return (
        f"more than {MAX_NODES} values once aliases are expanded (an alias bomb?); "
        "a playbook needs far fewer: split it or repeat less"
    )


def check_text(text: str) -> None:
    """YamlSyntaxError for a text too large or with a character no playbook needs."""
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlSyntaxError(1, TOO_LARGE)
    bad = _BAD_CHAR.search(text, 1 if text.startswith("\ufeff") else 0)
    if bad:
        ch = bad.group()
        name = unicodedata.name(ch, "a control character")
        line = line_at(text, bad.start())
        column = bad.start() - max(text.rfind("\n", 0, bad.start()), text.rfind("\r", 0, bad.start()))
        raise YamlSyntaxError(
            line, f"column {column}: character U+{ord(ch):04X} ({name}) has no place in a playbook; delete it"
        )


def load_with_lines(text: str) -> tuple[Any, LineMap]:
    """Parse one YAML document; reject duplicate keys (PyYAML silently keeps the last one) and whatever
    `check_text` and the limits refuse, each as a YamlSyntaxError with its line."""
    check_text(text)
    loader = _Loader(text)
    lines = LineMap()
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        lines.lines[()] = _line(node)
        return _Builder(loader, lines).build(node, ()), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlSyntaxError(mark.line + 1 if mark else 1, f"YAML syntax: {exc.problem or exc}") from None
    except yaml.reader.ReaderError as exc:  # check_text has refused what a reader refuses; kept as a guard
        raise YamlSyntaxError(line_at(text, exc.position), f"cannot read: {exc.reason}") from None
    except RecursionError:  # the limits stop well before; kept as a guard
        raise YamlSyntaxError(1, _too_deep()) from None
    finally:
        loader.dispose()


class _Builder:
    """Plain data from the node graph, counting every value it builds: aliases are expanded here, so this
    is where an alias bomb would explode."""

    def __init__(self, loader: _Loader, lines: LineMap) -> None:
        self.loader = loader
        self.lines = lines
        self.count = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:  # said at the top-level key that explodes, not deep inside an anchor
            raise YamlSyntaxError(self.lines.line_of(path[:1]) if path else _line(node), _too_many())
        if len(path) > MAX_DEPTH:
            raise YamlSyntaxError(_line(node), _too_deep())
        if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_TAGS:
            raise YamlSyntaxError(_line(node), f"tag '{node.tag}' is not allowed; a playbook holds plain values")
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._key(key_node)
                if key in out:
                    raise YamlSyntaxError(
                        _line(key_node),
                        f"duplicate key '{key}' (first at line {self.lines.lines[(*path, key)]}); keep only one",
                    )
                self.lines.lines[(*path, key)] = _line(key_node)
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.lines.lines[(*path, i)] = _line(item)
                items.append(self.build(item, (*path, i)))
            return items
        return self._scalar(node)

    def _key(self, node: yaml.Node) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise YamlSyntaxError(_line(node), "a key must be a plain name, not a list or a mapping")
        key = self._scalar(node)
        if key is None:
            return "null"
        if isinstance(key, str | int | float | bool | dt.date):
            return str(key)
        raise YamlSyntaxError(_line(node), f"a key must be a plain name, not {type(key).__name__}")

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise YamlSyntaxError(_line(node), f"{exc.problem}; a playbook holds plain values") from None
        except (ValueError, TypeError, OverflowError) as exc:  # 2001-02-30, an integer of 5000 digits, ...
            shown = str(node.value)[:40] + ("..." if len(str(node.value)) > 40 else "")
            reason = "too many digits" if node.tag.endswith(":int") else str(exc)
            raise YamlSyntaxError(
                _line(node), f"cannot read '{shown}': {reason}; quote it to keep it as text"
            ) from None
