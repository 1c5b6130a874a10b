"""YAML documents with the line of every key and item, for diagnostics that point at the text.

Profiles are plain data: aliases (``*name``) are refused — a few hundred bytes
of nested aliases expand to gigabytes ("billion laughs") — and so is nesting
deeper than :data:`MAX_DEPTH` levels. Anchors alone (``&name``) are harmless
and accepted.
"""

from __future__ import annotations

from typing import Any

import yaml

Path = tuple[Any, ...]
MAX_DEPTH = 64  # nesting levels of mappings and sequences; real profiles use fewer than 10


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases and nesting deeper than :data:`MAX_DEPTH`.

    Raises (while composing):
        yaml.composer.ComposerError: at the alias or the too-deep node, with its position.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"aliases (*{event.anchor}) are not allowed in experiment profiles; write the value out",
                event.start_mark)
        if self.check_event(yaml.MappingStartEvent, yaml.SequenceStartEvent):
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise yaml.composer.ComposerError(
                        None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        return super().compose_node(parent, index)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with :class:`BoundedLoader` (no aliases, bounded nesting).

    Raises:
        yaml.YAMLError: not YAML, an alias, or too deep.
    """
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class YamlSyntaxError(ValueError):
    """The text is not YAML. ``line``/``column`` are 1-based (or None)."""

    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


def load_with_lines(text: str) -> tuple[Any, dict[Path, int]]:
    """Parse ``text`` (safe YAML) and map each path to its 1-based line.

    Paths are tuples of mapping keys and sequence indexes, e.g.
    ``("common", "jobs", "stirring", "actions", 0, "t")``; ``()`` is the document.

    Returns:
        ``(data, lines)``; ``data`` is None for an empty document.

    Raises:
        YamlSyntaxError: the text does not parse.
    """
    try:
        loader = BoundedLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p) or str(exc)
        raise YamlSyntaxError(message, mark.line + 1 if mark else None, mark.column + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc), None, None) from None
    lines: dict[Path, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def _key_value(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_object(node, deep=True)
        finally:
            loader.dispose()
    return repr(node.value)


def _walk(node: yaml.Node, path: Path, lines: dict[Path, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            try:
                key = _key_value(key_node)
            except yaml.YAMLError:
                continue
            try:
                hash(key)
            except TypeError:
                continue
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, path + (index,), lines)


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path``, else of its nearest ancestor present in ``lines``."""
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def format_path(path: Path) -> str:
    """``("common", "jobs", "stirring", "actions", 0)`` → ``"common.jobs.stirring.actions[0]"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
