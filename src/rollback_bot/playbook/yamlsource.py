"""YAML loading that remembers the line of every key and list item, so errors can say file:line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


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


def load_with_lines(text: str) -> tuple[Any, LineMap]:
    """Parse one YAML document; reject duplicate keys (PyYAML silently keeps the last one)."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            raise YamlSyntaxError(line, f"YAML syntax: {exc.problem or exc}") from None
        lines = LineMap()
        if node is None:
            return None, lines
        lines.lines[()] = node.start_mark.line + 1
        return _build(loader, node, (), lines), lines
    finally:
        loader.dispose()


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path, lines: LineMap) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, int | float | bool) or key is None:
                key = str(key) if key is not None else "null"
            if key in out:
                raise YamlSyntaxError(
                    key_node.start_mark.line + 1,
                    f"duplicate key '{key}' (first at line {lines.lines[(*path, key)]}); keep only one",
                )
            lines.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(loader, value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            lines.lines[(*path, i)] = item.start_mark.line + 1
            items.append(_build(loader, item, (*path, i), lines))
        return items
    return loader.construct_object(node, deep=True)
