"""Few-shot examples: load a pool, select the examples that suit a query, render them.

``few_shot(pool, k=3, select="similar")`` builds a :class:`FewShot` once per pool; calling
it with a query returns the chosen examples, best first, and :meth:`FewShot.text` /
:meth:`FewShot.messages` render them as an inline block or as chat turns.

Selection, in one pass per query:

1. **No leakage.** Pool rows that are the query itself are dropped: the same ``id`` when
   both carry one, or the same values on every compared field.
2. **Ranking** by the ``select`` strategy (see :data:`SelectName`).
3. **Token budget.** Examples are taken in rank order; one whose rendered text would push
   the total past ``max_tokens`` is skipped and the next one tried, until ``k`` are taken.

Lexical similarity is BM25 from ``rank-bm25`` over :func:`promptkit.metrics.tokenize`
tokens, so Chinese and Japanese text is compared character by character. The variant is
BM25+ with ``delta=0``, which is Okapi BM25 with the always-positive idf
``log((N + 1) / n)``: ``rank_bm25.BM25Okapi`` gives a zero or clamped weight to terms found
in half or more of the rows, which in a pool of a few dozen examples is most terms (a
two-row pool scores every row 0).
"""

from __future__ import annotations

import os
import random
import string
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from rank_bm25 import BM25Plus

from ..datasets import content_id, iter_rows
from ..errors import ConfigError
from ..scoring.metrics import cosine, tokenize
from ..tokens import count_tokens

__all__ = [
    "DEFAULT_EXAMPLE_FORMAT",
    "Example",
    "FewShot",
    "SelectName",
    "Selector",
    "few_shot",
    "load_pool",
]

Example = Mapping[str, Any]
"""One pool row: a mapping of field names to values."""

SelectName = Literal["first", "random", "similar", "mmr", "balanced"]
"""How examples are chosen.

* ``first``: the pool's first rows, in pool order.
* ``random``: a shuffle seeded by ``seed`` and the query's content id, so each query gets
  its own draw and the same query always gets the same one.
* ``similar``: highest BM25 score against the query first (cosine of embeddings when
  ``embed`` is given); ties keep pool order.
* ``mmr``: maximal marginal relevance, trading similarity to the query for difference from
  the examples already chosen (see :class:`FewShot`).
* ``balanced``: the same number of examples per value of the ``label`` field, taken in
  turn from each label (labels in the order the pool first shows them), each label's
  examples most similar first.
"""

SELECT_NAMES: tuple[str, ...] = get_args(SelectName)

DEFAULT_EXAMPLE_FORMAT = "Input: {input}\nOutput: {output}"
"""How one example is written in :meth:`FewShot.text`: a :meth:`str.format_map` pattern."""

DEFAULT_SEPARATOR = "\n\n"
"""What :meth:`FewShot.text` puts between two examples."""

Embedder = Callable[[list[str]], list[list[float]]]


class Selector(Protocol):
    """Anything that picks ``k`` examples for a query."""

    def __call__(self, query: Mapping[str, Any], k: int) -> list[dict[str, Any]]: ...


def load_pool(source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
              base_dir: Path | None = None) -> list[dict[str, Any]]:
    """Read an example pool.

    Args:
        source: A list of mappings, or the path of a ``.jsonl`` or ``.csv`` file.
        base_dir: Where a relative path is looked up (default: the working directory).

    Returns:
        The rows as new dicts, in order.

    Raises:
        ConfigError: A missing or unsupported file, a row that is not an object (with its
            file and line), or a list item that is not a mapping.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        return [dict(row) for _, row in iter_rows(path)]
    rows = []
    for index, row in enumerate(source):
        if not isinstance(row, Mapping):
            raise ConfigError(f"each example must be a mapping, not {type(row).__name__}",
                              key_path=f"pool[{index}]")
        rows.append(dict(row))
    return rows


def few_shot(pool: str | os.PathLike[str] | Sequence[Mapping[str, Any]], k: int = 3,
             select: SelectName = "similar", *, fields: Sequence[str] | None = None,
             label: str | None = None, seed: int = 0, mmr_lambda: float = 0.5,
             max_tokens: int | None = None, template: str = DEFAULT_EXAMPLE_FORMAT,
             embed: Embedder | None = None, model: str | None = None) -> FewShot:
    """Build a few-shot selector over a pool of examples.

    Args:
        pool: The examples, as :func:`load_pool` accepts them (a list or a file path).
        k: How many examples a query gets by default.
        select: The selection strategy (see :data:`SelectName`).
        fields: The fields whose text is compared with the query. Default: the query's own
            fields that hold strings, except ``id`` and the ``label`` field (so a query that
            carries its gold label is not matched on it).
        label: The field ``balanced`` balances on.
        seed: Seed for ``random``.
        mmr_lambda: For ``mmr``, the weight of relevance against diversity, in ``[0, 1]``;
            1 gives the ``similar`` order.
        max_tokens: Most tokens the rendered examples may take together (each example
            rendered alone with ``template``; separators and chat framing not counted).
        template: How one example is rendered, a :meth:`str.format_map` pattern over the
            example's fields. Only plain field names are allowed (``{input}``).
        embed: Turns texts into vectors (e.g. an OpenAI-compatible ``/v1/embeddings``
            call). When given, ``similar``, ``mmr`` and ``balanced`` compare by cosine of
            embeddings instead of BM25. The pool is embedded once, on first use.
        model: The model whose tokenizer counts tokens for ``max_tokens``.

    Returns:
        A :class:`FewShot`, callable as a :class:`Selector`.

    Raises:
        ConfigError: An unknown ``select``, ``balanced`` without ``label``, a bad ``k``,
            ``mmr_lambda``, ``max_tokens`` or ``template``, or an unreadable pool.
    """
    return FewShot(load_pool(pool), k=k, select=select, fields=fields, label=label,
                   seed=seed, mmr_lambda=mmr_lambda, max_tokens=max_tokens,
                   template=template, embed=embed, model=model)


@dataclass
class _Index:
    """What is compared for one set of fields: built once, reused for every query."""

    counts: list[Counter[str]]
    bm25: BM25Plus | None  # None when no row has any token
    texts: list[str]
    embeddings: list[list[float]] | None = None


class FewShot:
    """Examples selected from a fixed pool for each query, best first.

    Build it with :func:`few_shot`. The returned examples are copies of the pool rows, in
    rank order: the best example first (``first`` and ``balanced``: their own order). A
    template that wants the best example last, next to the question, can ``|reverse`` them.

    ``mmr`` picks, one at a time, the example maximising
    ``λ·relevance(query, d) − (1−λ)·max(similarity(d, s) for s already chosen)``. Relevance is
    the BM25 score divided by the best score for that query (so in ``[0, 1]``) and the
    similarity between examples is the cosine of their token-count vectors; with ``embed``
    both are cosines of embeddings. Ties go to the better ``similar`` rank.
    """

    def __init__(self, pool: Sequence[Mapping[str, Any]], *, k: int = 3,
                 select: SelectName = "similar", fields: Sequence[str] | None = None,
                 label: str | None = None, seed: int = 0, mmr_lambda: float = 0.5,
                 max_tokens: int | None = None, template: str = DEFAULT_EXAMPLE_FORMAT,
                 embed: Embedder | None = None, model: str | None = None):
        if select not in SELECT_NAMES:
            raise ConfigError(f"unknown few-shot selector {select!r} "
                              f"(choose from {', '.join(SELECT_NAMES)})", key_path="select")
        if select == "balanced" and not label:
            raise ConfigError("the balanced selector needs a label field", key_path="label")
        if k < 0:
            raise ConfigError(f"k must be 0 or more, got {k}", key_path="k")
        if not 0.0 <= mmr_lambda <= 1.0:
            raise ConfigError(f"mmr_lambda must be between 0 and 1, got {mmr_lambda}",
                              key_path="mmr_lambda")
        if max_tokens is not None and max_tokens < 0:
            raise ConfigError(f"max_tokens must be 0 or more, got {max_tokens}",
                              key_path="max_tokens")
        _check_format(template)
        self.pool = [dict(row) for row in pool]
        self.k = k
        self.select = select
        self.fields = tuple(fields) if fields is not None else None
        self.label = label
        self.seed = seed
        self.mmr_lambda = mmr_lambda
        self.max_tokens = max_tokens
        self.template = template
        self.embed = embed
        self.model = model
        self._indexes: dict[tuple[str, ...], _Index] = {}
        self._costs: dict[int, int] = {}

    def __call__(self, query: Mapping[str, Any], k: int | None = None) -> list[dict[str, Any]]:
        """The examples chosen for ``query``, best first.

        Args:
            query: The input the examples are for (e.g. an eval case's fields).
            k: How many examples, instead of the ``k`` given at build time.

        Returns:
            Up to ``k`` copies of pool rows, never the query's own row.
        """
        k = self.k if k is None else k
        fields = self._fields_for(query)
        candidates = [i for i, row in enumerate(self.pool)
                      if not _is_same_example(row, query, fields)]
        if k <= 0 or not candidates:
            return []
        if self.select == "first":
            chosen = self._take(candidates, k)
        elif self.select == "random":
            order = list(candidates)
            random.Random(f"{self.seed}:{content_id(dict(query))}").shuffle(order)
            chosen = self._take(order, k)
        elif self.select == "similar":
            chosen = self._take(self._ranked(query, fields, candidates)[0], k)
        elif self.select == "mmr":
            chosen = self._mmr(query, fields, candidates, k)
        else:
            chosen = self._balanced(query, fields, candidates, k)
        return [dict(self.pool[i]) for i in chosen]

    def text(self, query: Mapping[str, Any], template: str | None = None,
             separator: str = DEFAULT_SEPARATOR, *, k: int | None = None) -> str:
        """The chosen examples rendered one after another.

        Args:
            query: The input the examples are for.
            template: How to render one example (default: the one given at build time).
            separator: What goes between two examples.
            k: How many examples, instead of the build-time ``k``.

        Raises:
            ConfigError: An example lacks a field the template uses.
        """
        pattern = self.template if template is None else template
        if template is not None:
            _check_format(template)
        return separator.join(_render(example, pattern) for example in self(query, k))

    def messages(self, query: Mapping[str, Any], input_field: str = "input",
                 output_field: str = "output", *, k: int | None = None
                 ) -> list[dict[str, str]]:
        """The chosen examples as chat turns: a user message, then the assistant's answer.

        Args:
            query: The input the examples are for.
            input_field: The example field that becomes the user message.
            output_field: The example field that becomes the assistant message.
            k: How many examples, instead of the build-time ``k``.

        Raises:
            ConfigError: An example lacks ``input_field`` or ``output_field``.
        """
        turns = []
        for example in self(query, k):
            for role, field in (("user", input_field), ("assistant", output_field)):
                if field not in example:
                    raise ConfigError(f"few-shot example has no field {field!r}",
                                      key_path=field)
                turns.append({"role": role, "content": str(example[field])})
        return turns

    # -- selection ----------------------------------------------------------------------

    def _fields_for(self, query: Mapping[str, Any]) -> tuple[str, ...]:
        if self.fields is not None:
            return self.fields
        return tuple(key for key, value in query.items()
                     if isinstance(value, str) and key not in ("id", self.label))

    def _take(self, order: Iterable[int], k: int) -> list[int]:
        """The first ``k`` of ``order`` that fit the token budget."""
        chosen: list[int] = []
        used = 0
        for i in order:
            if len(chosen) == k:
                break
            if self._fits(i, used):
                chosen.append(i)
                used += self._cost(i)
        return chosen

    def _cost(self, i: int) -> int:
        """Tokens of example ``i`` rendered alone; 0 without a budget (nothing to count)."""
        if self.max_tokens is None:
            return 0
        if i not in self._costs:
            self._costs[i] = count_tokens(_render(self.pool[i], self.template), self.model)
        return self._costs[i]

    def _fits(self, i: int, used: int) -> bool:
        return self.max_tokens is None or used + self._cost(i) <= self.max_tokens

    def _ranked(self, query: Mapping[str, Any], fields: tuple[str, ...],
                candidates: list[int]) -> tuple[list[int], dict[int, float]]:
        """Candidates most relevant first (ties in pool order), with their relevance.

        Relevance is the BM25 score over the best score (in ``[0, 1]``), or the cosine of
        embeddings when ``embed`` is set.
        """
        index = self._index(fields)
        query_text = _join_fields(query, fields)
        if self.embed is not None:
            vectors = self._embeddings(index)
            query_vector = _embed(self.embed, [query_text])[0]
            relevance = {i: cosine(query_vector, vectors[i]) for i in candidates}
        else:
            query_tokens = tokenize(query_text)
            scores = (index.bm25.get_scores(query_tokens) if index.bm25 and query_tokens
                      else [0.0] * len(self.pool))
            best = max(float(scores[i]) for i in candidates)
            relevance = {i: float(scores[i]) / best if best > 0 else 0.0 for i in candidates}
        order = sorted(candidates, key=lambda i: (-relevance[i], i))
        return order, relevance

    def _mmr(self, query: Mapping[str, Any], fields: tuple[str, ...],
             candidates: list[int], k: int) -> list[int]:
        order, relevance = self._ranked(query, fields, candidates)
        index = self._index(fields)
        rank = {i: position for position, i in enumerate(order)}
        remaining = list(order)
        chosen: list[int] = []
        used = 0
        redundancy = dict.fromkeys(order, 0.0)  # max similarity to anything chosen so far
        lam = self.mmr_lambda
        while remaining and len(chosen) < k:
            best = max(remaining, key=lambda i: (lam * relevance[i] - (1 - lam) * redundancy[i],
                                                 -rank[i]))
            remaining.remove(best)
            if not self._fits(best, used):
                continue
            chosen.append(best)
            used += self._cost(best)
            for i in remaining:
                redundancy[i] = max(redundancy[i], self._similarity(index, i, best))
        return chosen

    def _similarity(self, index: _Index, a: int, b: int) -> float:
        if self.embed is not None:
            vectors = self._embeddings(index)
            return cosine(vectors[a], vectors[b])
        return _count_cosine(index.counts[a], index.counts[b])

    def _balanced(self, query: Mapping[str, Any], fields: tuple[str, ...],
                  candidates: list[int], k: int) -> list[int]:
        """Round-robin over labels (first-seen order), each label's best-ranked first.

        Rows without the label are never chosen. When a label runs out (or its remaining
        examples do not fit the budget) the others go on taking turns until ``k``.
        """
        assert self.label is not None
        order, _ = self._ranked(query, fields, candidates)
        queues: dict[Hashable, list[int]] = {}
        for i in candidates:  # pool order fixes the label order
            value = self.pool[i].get(self.label)
            if value is not None:
                queues.setdefault(_label_key(value), [])
        for i in order:
            value = self.pool[i].get(self.label)
            if value is not None:
                queues[_label_key(value)].append(i)
        chosen: list[int] = []
        used = 0
        while len(chosen) < k and any(queues.values()):
            for queue in queues.values():
                if len(chosen) == k:
                    break
                while queue:
                    i = queue.pop(0)
                    if self._fits(i, used):
                        chosen.append(i)
                        used += self._cost(i)
                        break
        return chosen

    # -- indexes ------------------------------------------------------------------------

    def _index(self, fields: tuple[str, ...]) -> _Index:
        if fields not in self._indexes:
            texts = [_join_fields(row, fields) for row in self.pool]
            tokens = [tokenize(text) for text in texts]
            # rank_bm25 divides by the mean row length, so an all-empty pool has no index.
            bm25 = BM25Plus(tokens, delta=0) if any(tokens) else None
            self._indexes[fields] = _Index([Counter(t) for t in tokens], bm25, texts)
        return self._indexes[fields]

    def _embeddings(self, index: _Index) -> list[list[float]]:
        assert self.embed is not None
        if index.embeddings is None:
            index.embeddings = _embed(self.embed, index.texts)
        return index.embeddings


def _embed(embed: Embedder, texts: list[str]) -> list[list[float]]:
    vectors = [list(vector) for vector in embed(texts)]
    if len(vectors) != len(texts):
        raise ValueError(f"embed returned {len(vectors)} vectors for {len(texts)} texts")
    return vectors


def _join_fields(row: Mapping[str, Any], fields: Sequence[str]) -> str:
    return "\n".join(str(row[name]) for name in fields if row.get(name) is not None)


def _is_same_example(row: Mapping[str, Any], query: Mapping[str, Any],
                     fields: tuple[str, ...]) -> bool:
    """Whether ``row`` is the query itself: same id, or same values on the compared fields.

    Without compared fields, only a row equal to the query in every field counts.
    """
    if _has_id(row) and _has_id(query) and str(row["id"]) == str(query["id"]):
        return True
    if not fields:
        return dict(row) == dict(query)
    return all(row.get(name) == query.get(name) for name in fields)


def _has_id(row: Mapping[str, Any]) -> bool:
    return row.get("id") is not None and str(row["id"]) != ""


def _label_key(value: Any) -> Hashable:
    return value if isinstance(value, Hashable) else repr(value)


def _count_cosine(a: Counter[str], b: Counter[str]) -> float:
    vocabulary = sorted(a.keys() | b.keys())
    return cosine([a[t] for t in vocabulary], [b[t] for t in vocabulary])


def _check_format(template: str) -> None:
    """Refuse a pattern that does not parse or reaches past plain field names.

    ``{input.__class__}`` or ``{input[0]}`` would let a pattern from an eval file read
    attributes of the values, so only ``{name}`` (with a conversion or spec) is allowed.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"invalid example format: {exc}", key_path="template") from None
    for _, name, spec, _ in parsed:
        for field in (name, *(_format_fields(spec) if spec else ())):
            if field is None:
                continue
            if not field.isidentifier():
                raise ConfigError(f"example format field {{{field}}} must be a plain name",
                                  key_path="template")


def _format_fields(spec: str) -> list[str | None]:
    # A format spec may nest fields of its own: "{value:{width}}".
    return [name for _, name, _, _ in string.Formatter().parse(spec)]


def _render(example: Mapping[str, Any], template: str) -> str:
    try:
        return template.format_map(example)
    except KeyError as exc:
        raise ConfigError(f"few-shot example has no field {exc.args[0]!r} "
                          "used by the example format", key_path="template") from None
    except (ValueError, TypeError) as exc:  # e.g. "{n:d}" given a string
        raise ConfigError(f"cannot render few-shot example: {exc}",
                          key_path="template") from None
