"""Where a JSON Schema's ``$ref``s lead: the first one that leads nowhere, and why.

Assertion schemas (scoring) and a template's tool parameters and ``output:`` (templates)
are both refused before any request when a ``$ref`` leads nowhere; this is the one walk
they share. Nothing is fetched: a ``$ref`` must lead into the schema itself, or to a JSON
Schema metaschema where the caller allows it.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import referencing.exceptions

__all__ = ["unresolved_ref"]


def unresolved_ref(schema: Any, *, allow_metaschemas: bool
                   ) -> tuple[str, list[str | int]] | None:
    """The first ``$ref`` of a valid ``schema`` that leads nowhere inside it (the message
    and the key path of the ``$ref``), or ``None`` when every one resolves.

    The schema's ``$schema`` picks the draft; without one, the latest draft applies.

    Args:
        schema: a schema that passed its draft's ``check_schema``.
        allow_metaschemas: whether a ``$ref`` to a JSON Schema metaschema (such as
            ``https://json-schema.org/draft/2020-12/schema``) resolves; otherwise a ``$ref``
            to another document leads nowhere, unless an ``$id`` inside the schema names it.
    """
    # Imported here, as jsonschema is slow to import and most commands never need it.
    import referencing
    import referencing.exceptions
    import referencing.jsonschema
    from jsonschema.validators import validator_for
    from jsonschema_specifications import REGISTRY as METASCHEMAS

    dialect = validator_for(schema).META_SCHEMA.get("$schema", "")
    specification = referencing.jsonschema.specification_with(
        dialect, default=referencing.jsonschema.DRAFT202012)
    root = specification.create_resource(schema)
    registry = METASCHEMAS if allow_metaschemas else referencing.Registry()
    pending = deque([(root, registry.resolver_with_root(root))])
    while pending:  # every subschema, each with the base URI its $ids give it
        resource, resolver = pending.popleft()
        contents = resource.contents
        ref = contents.get("$ref") if isinstance(contents, dict) else None
        if isinstance(ref, str):
            try:
                resolver.lookup(ref)
            except referencing.exceptions.Unresolvable as exc:
                return _ref_message(ref, exc), [*_paths(schema).get(id(contents), []), "$ref"]
        pending.extend((sub, resolver.in_subresource(sub)) for sub in resource.subresources())
    return None


def _ref_message(ref: str, exc: referencing.exceptions.Unresolvable) -> str:
    import referencing.exceptions

    if isinstance(exc, referencing.exceptions.PointerToNowhere):
        return f"$ref {ref!r} points to nothing in the schema"
    if isinstance(exc, referencing.exceptions.NoSuchAnchor):
        return f"$ref {ref!r} names no anchor of the schema"
    return (f"$ref {ref!r} is not in the schema: a $ref must lead into the schema itself "
            "(put the definition under $defs), as other documents are never fetched")


def _paths(value: Any) -> dict[int, list[str | int]]:
    """The key path of every mapping and list inside ``value``, by identity."""
    found: dict[int, list[str | int]] = {}
    pending: list[tuple[Any, list[str | int]]] = [(value, [])]
    while pending:
        node, path = pending.pop()
        if id(node) in found or not isinstance(node, dict | list):
            continue
        found[id(node)] = path
        items = node.items() if isinstance(node, dict) else enumerate(node)
        pending.extend((child, [*path, key]) for key, child in items)
    return found
