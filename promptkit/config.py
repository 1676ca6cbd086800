"""Loading YAML strictly and turning validation errors into ``file:line: key: message``.

Every YAML file promptkit reads (template front matter, labels, eval specs) goes
through :func:`load_yaml` and, when validated with pydantic, :func:`validate`, so
all of them report mistakes the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


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
        try:
            self.node = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + first_line if mark else None
            problem = exc.problem or exc.context or "invalid YAML"
            raise ConfigError(f"invalid YAML: {problem}", filename, line) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML: {exc}", filename) from None

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
