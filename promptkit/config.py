"""Reading config files strictly: UTF-8 text, YAML, and ``file:line: key: message`` errors.

Every YAML file promptkit reads (template front matter, labels, eval specs) goes
through :class:`YamlDocument` and, when validated with pydantic, :func:`validate`, so
all of them report mistakes the same way. :func:`read_text` reads the file itself.

YAML is read more strictly than ``yaml.safe_load`` does, because these files come from
anyone who can open a pull request:

* a key repeated in one mapping is an error naming both lines, not "the last one wins"
  (merge keys, ``<<: *defaults``, may still be overridden);
* aliases may add at most :data:`ALIAS_EXPANSION_LIMIT` nodes to a document, so a
  few hundred bytes of nested aliases ("billion laughs") cannot expand to gigabytes
  when the data is validated or written out; an alias to its own parent is refused;
* nesting too deep for the parser is an error, not a ``RecursionError``.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)

#: How many nodes aliases may add to a YAML document beyond the nodes written in it.
#: Real specs reuse a few anchors (shared provider params, assertion defaults) and stay
#: far below; a 633-byte "billion laughs" document would add about 10**9.
ALIAS_EXPANSION_LIMIT = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


def read_text(path: str | os.PathLike[str], what: str = "file") -> str:
    """Read a UTF-8 text file strictly, as ``Path.read_text`` would, minus a leading BOM.

    Line endings are translated to ``\n`` as in text mode. A UTF-8 byte order mark
    (which Windows editors add) is dropped instead of becoming part of the first key.

    Args:
        path: The file.
        what: What the file is, for messages (``"eval spec"``, ``"baseline"``).

    Returns:
        The text.

    Raises:
        ConfigError: ``cannot read <what>: <reason>`` when the file cannot be opened
            or read, or, for bytes that are not UTF-8, the line and column of the
            first invalid one.
    """
    filename = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or exc}", filename) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError(f"{what} is UTF-16 text; save it as UTF-8", filename, 1)
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Everything before the first bad byte decodes: count lines and columns in it.
        before = _universal_newlines(data[: exc.start].decode("utf-8")).split("\n")
        raise ConfigError(
            f"{what} is not UTF-8 text: invalid byte 0x{data[exc.start]:02x} "
            f"at column {len(before[-1]) + 1}",
            filename,
            len(before),
        ) from None
    return _universal_newlines(text)


def _universal_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that records where aliases are used and never edits the node tree.

    PyYAML's ``flatten_mapping`` rewrites mapping nodes in place to apply merge keys;
    :meth:`YamlDocument.line_of` reads the tree after construction, so merges are
    applied to a copy of the pairs instead.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self.alias_uses: list[tuple[yaml.Mark, str, Node]] = []
        self.last_mark: yaml.Mark | None = None  # where composing got to

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        self.last_mark = event.start_mark
        node = super().compose_node(parent, index)
        if isinstance(event, yaml.AliasEvent):
            self.alias_uses.append((event.start_mark, event.anchor, node))
        return node

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            node = MappingNode(node.tag, self._merged_pairs(node), node.start_mark,
                               node.end_mark, node.flow_style)
        return yaml.constructor.BaseConstructor.construct_mapping(self, node, deep=deep)

    def _merged_pairs(self, node: MappingNode) -> list[tuple[Node, Node]]:
        """The pairs of ``node`` after its merge keys, as ``flatten_mapping`` orders them."""
        merged: list[tuple[Node, Node]] = []
        own: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                if key_node.tag == "tag:yaml.org,2002:value":
                    key_node.tag = "tag:yaml.org,2002:str"  # as PyYAML does
                own.append((key_node, value_node))
            elif isinstance(value_node, MappingNode):
                merged.extend(self._merged_pairs(value_node))
            elif isinstance(value_node, SequenceNode):
                for subnode in reversed(value_node.value):  # earlier mappings win
                    if not isinstance(subnode, MappingNode):
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", node.start_mark,
                            f"expected a mapping for merging, but found {subnode.id}",
                            subnode.start_mark)
                    merged.extend(self._merged_pairs(subnode))
            else:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    "expected a mapping or list of mappings for merging, but found "
                    f"{value_node.id}", value_node.start_mark)
        return merged + own


class YamlDocument:
    """Parsed YAML plus the node tree, to find the line of any key path.

    Args:
        text: The YAML source.
        filename: Shown in errors.
        first_line: The file line the text starts on (front matter starts on 2).
    """

    def __init__(self, text: str, filename: str, first_line: int = 1):
        self.filename = filename
        self.first_line = first_line
        loader = _StrictLoader(text)
        try:
            self.node: Node | None = loader.get_single_node()
            if self.node is not None:
                self._check_aliases(self.node, loader.alias_uses)
                self._check_duplicate_keys(self.node, loader)
            # Built from the tree composed above: the text is parsed once.
            self.data: Any = (loader.construct_document(self.node)
                              if self.node is not None else None)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + first_line if mark else None
            problem = exc.problem or exc.context or "invalid YAML"
            raise ConfigError(f"invalid YAML: {problem}", filename, line) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML: {exc}", filename) from None
        except ValueError as exc:  # e.g. an integer longer than Python converts (4,300 digits)
            mark = loader.last_mark or loader.get_mark()
            problem = ("a number with more than 4,300 digits" if "integer string conversion"
                       in str(exc) else str(exc))
            raise ConfigError(f"invalid YAML: {problem}", filename,
                              mark.line + first_line) from None
        except RecursionError:
            # PyYAML composes nested collections recursively.
            mark = loader.last_mark or loader.get_mark()
            raise ConfigError("invalid YAML: nested too deeply", filename,
                              mark.line + first_line) from None
        finally:
            loader.dispose()

    def _line(self, mark: yaml.Mark) -> int:
        return mark.line + self.first_line

    def _check_aliases(self, root: Node, alias_uses: list[tuple[yaml.Mark, str, Node]]
                       ) -> None:
        """Refuse aliases to their own parent and alias expansion past the limit.

        Aliased nodes are shared in the tree, so the expanded size of each node is
        computed once (memoized by identity): linear in the document's own size.
        """
        expanded: dict[int, int] = {}
        open_nodes: set[int] = set()

        def size(node: Node) -> int:
            key = id(node)
            if key in expanded:
                return expanded[key]
            if key in open_nodes:
                raise self._recursive_alias_error(node, alias_uses)
            open_nodes.add(key)
            total = 1
            if isinstance(node, SequenceNode):
                total += sum(size(child) for child in node.value)
            elif isinstance(node, MappingNode):
                total += sum(size(k) + size(v) for k, v in node.value)
            open_nodes.discard(key)
            expanded[key] = total
            return total

        added = size(root) - len(expanded)  # len(expanded): the nodes written once
        if added <= ALIAS_EXPANSION_LIMIT:
            return
        mark, anchor, target = max(alias_uses, key=lambda use: expanded[id(use[2])])
        raise ConfigError(
            f"YAML aliases expand this document by {added:,} nodes, more than the "
            f"{ALIAS_EXPANSION_LIMIT:,} allowed (alias *{anchor} here repeats "
            f"{expanded[id(target)]:,})",
            self.filename,
            self._line(mark),
        )

    def _recursive_alias_error(self, node: Node,
                               alias_uses: list[tuple[yaml.Mark, str, Node]]) -> ConfigError:
        for mark, anchor, target in alias_uses:
            if target is node and node.start_mark.index <= mark.index < node.end_mark.index:
                return ConfigError(f"alias *{anchor} refers to a value that contains it",
                                   self.filename, self._line(mark))
        return ConfigError("an alias refers to a value that contains it", self.filename,
                           self._line(node.start_mark))

    def _check_duplicate_keys(self, root: Node, loader: _StrictLoader) -> None:
        """Refuse a key written twice in one mapping (merged keys may be overridden)."""
        visited: set[int] = set()

        def walk(node: Node, path: list[str | int]) -> None:
            if id(node) in visited:  # reached again through an alias: checked already
                return
            visited.add(id(node))
            if isinstance(node, SequenceNode):
                for index, child in enumerate(node.value):
                    walk(child, [*path, index])
                return
            if not isinstance(node, MappingNode):
                return
            first_lines: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    walk(value_node, path)
                    continue
                if isinstance(key_node, ScalarNode):
                    # The constructed key, so `1` and `"1"` differ but `yes` and `true`
                    # (both True) collide, exactly as they would in the dict.
                    key = loader.construct_object(key_node)
                    if key in first_lines:
                        raise ConfigError(
                            f"duplicate key {key_node.value!r} (first on line "
                            f"{first_lines[key]})",
                            self.filename,
                            self._line(key_node.start_mark),
                            format_path(path) or None,
                        )
                    first_lines[key] = self._line(key_node.start_mark)
                    walk(value_node, [*path, key_node.value])
                else:
                    walk(value_node, path)

        walk(root, [])

    def error(self, message: str, path: Sequence[str | int]) -> ConfigError:
        """A :class:`ConfigError` at ``path`` in this document: its file, line and key."""
        return ConfigError(message, self.filename, self.line_of(path),
                           format_path(path) or None)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The 1-based file line of the value at ``path``, or of its nearest parent."""
        node = self.node
        line = node.start_mark.line if node is not None else None
        for key in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_node.value == str(key):
                        child = value_node
                        line = key_node.start_mark.line
                        break
            elif (isinstance(node, yaml.SequenceNode) and isinstance(key, int)
                  and 0 <= key < len(node.value)):
                child = node.value[key]
                line = child.start_mark.line
            if child is None:
                break
            node = child
        return None if line is None else line + self.first_line


def format_path(path: Sequence[str | int]) -> str:
    """``("providers", 1, "base_url")`` → ``providers[1].base_url``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validate(model: type[ModelT], doc: YamlDocument, data: Any = None) -> ModelT:
    """Validate ``doc`` (or ``data`` taken from it) against a pydantic model.

    Raises:
        ConfigError: naming the file, the line and the key path of the first error.
    """
    try:
        return model.model_validate(doc.data if data is None else data)
    except ValidationError as exc:
        raise validation_error(exc, doc) from None


def validation_error(exc: ValidationError, doc: YamlDocument) -> ConfigError:
    """Turn the first pydantic error into a located :class:`ConfigError`."""
    err = exc.errors()[0]
    loc = [part for part in err["loc"] if not (isinstance(part, str) and "[" in part)]
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "required key is missing"
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return ConfigError(message, doc.filename, doc.line_of(loc), format_path(loc) or None)
