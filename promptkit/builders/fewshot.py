"""Few-shot examples: load a pool, select the examples that suit a query, render them.

:class:`FewShotSettings` says how examples are chosen; it is an eval spec's ``fewshot:``
and the keyword arguments of :func:`few_shot` alike. ``few_shot(pool, k=3,
select="similar")`` builds a :class:`FewShot` once per pool; calling it with a query
returns the chosen examples, best first, and :meth:`FewShot.text` /
:meth:`FewShot.messages` render them as an inline block or as chat turns.

Selection, in one pass per query:

1. **No leakage.** Pool rows that are the query itself are dropped: the same ``id`` when
   both carry one, or the same values on every compared field.
2. **Ranking** by the ``select`` strategy (see :data:`SelectName`).
3. **Token budget.** Examples are taken in rank order; one whose rendered text would push
   the total past ``budget`` is skipped and the next one tried, until ``k`` are taken. A
   budget that fits no example at all gives a
   :class:`~promptkit.errors.PromptkitWarning`, once per :class:`FewShot`, naming it.

Each example is written with one :class:`ExampleFormat` (the settings' ``format``, or the
default an eval spec and the ``fewshot()`` template global use too): that text is what
the budget counts and what :meth:`FewShot.text` shows.

Lexical similarity is BM25 from ``rank-bm25`` over :func:`promptkit.metrics.tokenize`
tokens, so Chinese and Japanese text is compared character by character. The variant is
BM25+ with ``delta=0``, which is Okapi BM25 with the always-positive idf
``log((N + 1) / n)``: ``rank_bm25.BM25Okapi`` gives a zero or clamped weight to terms found
in half or more of the rows, which in a pool of a few dozen examples is most terms (a
two-row pool scores every row 0).
"""

from __future__ import annotations

import inspect
import random
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..datasets import content_id
from ..errors import ConfigError, warn
from ..scoring.metrics import cosine, tokenize
from ..tokens import count_tokens
from .fewshot_settings import (
    DEFAULT_EXAMPLE_FORMAT,
    DEPRECATED_NAMES,
    ExampleFormat,
    FewShotSettings,
    PoolSource,
    SelectName,
    describe_example,
    format_problem,
)
from .options import rename_deprecated, validate_settings
from .pools import check_names_occur, load_pool, pool_path

if TYPE_CHECKING:
    from rank_bm25 import BM25Plus

__all__ = [
    "DEFAULT_EXAMPLE_FORMAT",
    "Example",
    "ExampleFormat",
    "FewShot",
    "FewShotSettings",
    "SelectName",
    "few_shot",
    "load_pool",
]

Example = Mapping[str, Any]
"""One pool row: a mapping of field names to values."""

DEFAULT_SEPARATOR = "\n\n"
"""What :meth:`FewShot.text` puts between two examples."""

TextEmbedder = Callable[[list[str]], list[list[float]]]
"""A synchronous embedder for selection: texts in, one vector each out. (Scoring's
async :class:`promptkit.scoring.Embedder` also takes the provider id.)"""


def few_shot(pool: PoolSource | FewShotSettings, k: int = 3, select: SelectName = "similar",
             *, fields: Sequence[str] | None = None, label: str | None = None, seed: int = 0,
             mmr_lambda: float = 0.5, budget: int | None = None, format: str | None = None,
             embed: TextEmbedder | None = None, model: str | None = None,
             base_dir: Path | None = None, name: str | None = None,
             **deprecated: Any) -> FewShot:
    """Build a few-shot selector over a pool of examples.

    The options are the fields of :class:`FewShotSettings` (an eval spec's ``fewshot:``
    takes the same names, with the same defaults); ``embed``, ``model``, ``base_dir`` and
    ``name`` say how to run it.

    Args:
        pool: The examples, as :func:`load_pool` accepts them (a list or a file path); or
            a whole :class:`FewShotSettings`, with none of the options below it holds.
        k: How many examples a query gets by default (0 to 100).
        select: The selection strategy (see :data:`SelectName`).
        fields: The fields whose text is compared with the query. Default: the query's own
            fields that hold strings, except ``id`` and the ``label`` field (so a query that
            carries its gold label is not matched on it).
        label: The field ``balanced`` balances on.
        seed: Seed for ``random``.
        mmr_lambda: For ``mmr``, the weight of relevance against diversity, in ``[0, 1]``;
            1 gives the ``similar`` order.
        budget: Most tokens the rendered examples may take together, at least 1 (each
            example rendered alone with ``format``; separators and chat framing not
            counted). One too small for any example gives no examples and a
            :class:`~promptkit.errors.PromptkitWarning`, once.
        format: How one example is written, a :meth:`str.format_map` pattern over the
            example's fields. Only plain field names are allowed (``{input}``). None (the
            default of eval specs too): :data:`DEFAULT_EXAMPLE_FORMAT`
            (``Input: ...\\nOutput: ...``) when every example has just ``input`` and
            ``output`` (``id`` aside), else every field but ``id`` as ``name: value``.
        embed: Turns texts into vectors (e.g. an OpenAI-compatible ``/v1/embeddings``
            call). When given, ``similar``, ``mmr`` and ``balanced`` compare by cosine of
            embeddings instead of BM25. The pool is embedded once, on first use.
        model: The model whose tokenizer counts tokens for ``budget``.
        base_dir: Where a relative pool path is looked up (default: the working directory).
        name: What the selector is for, named in its warnings (``"prompt 'fewshot-mmr'"``);
            they name its settings either way.
        **deprecated: ``max_tokens`` (now ``budget``), ``template`` (now ``format``) and
            ``lambda`` (now ``mmr_lambda``), each with a :class:`DeprecationWarning`.

    Returns:
        A :class:`FewShot`.

    Raises:
        ConfigError: An invalid option (its key path says which), an unreadable pool, or
            ``fields`` or ``label`` in none of the pool's examples.
        TypeError: An unknown keyword argument, an option given under its old and new
            names, or options besides a :class:`FewShotSettings`.
    """
    options = {"k": k, "select": select, "fields": fields, "label": label, "seed": seed,
               "mmr_lambda": mmr_lambda, "budget": budget, "format": format}
    given = {name for name, value in options.items() if value != _FEW_SHOT_DEFAULTS[name]}
    if isinstance(pool, FewShotSettings):
        if given or deprecated:
            names = ", ".join(sorted(given | set(deprecated)))
            raise TypeError(f"few_shot(settings) takes no other options ({names}): put them "
                            "in the settings")
        settings = pool
    else:
        for name, value in rename_deprecated(deprecated, DEPRECATED_NAMES, "few_shot()",
                                             stacklevel=2).items():
            if name in given:
                old = next(old for old, new in DEPRECATED_NAMES.items() if new == name)
                raise TypeError(f"few_shot() got {name!r} and its old name {old!r}")
            options[name] = value
        settings = validate_settings(FewShotSettings, {"pool": pool, **options})
    return FewShot(settings, embed=embed, model=model, base_dir=base_dir, name=name)


_FEW_SHOT_DEFAULTS = {name: parameter.default
                      for name, parameter in inspect.signature(few_shot).parameters.items()}


@dataclass
class _Index:
    """What is compared for one set of fields: built once, reused for every query."""

    counts: list[Counter[str]]
    bm25: BM25Plus | None  # None when no row has any token
    texts: list[str]
    embeddings: list[list[float]] | None = None


class FewShot:
    """Examples selected from a fixed pool for each query, best first.

    Build it with :func:`few_shot` (or from :class:`FewShotSettings` directly). The
    returned examples are copies of the pool rows, in rank order: the best example first
    (``first`` and ``balanced``: their own order). A template that wants the best example
    last, next to the question, can ``|reverse`` them.

    ``mmr`` picks, one at a time, the example maximising
    ``λ·relevance(query, d) − (1−λ)·max(similarity(d, s) for s already chosen)``. Relevance is
    the BM25 score divided by the best score for that query (so in ``[0, 1]``) and the
    similarity between examples is the cosine of their token-count vectors; with ``embed``
    both are cosines of embeddings. Ties go to the better ``similar`` rank.

    Attributes:
        settings: How examples are chosen.
        pool: The examples, as read from ``settings.pool``.
        example_format: How one example is written: ``settings.format``, or the default
            (see :meth:`ExampleFormat.of`).
        format: Its pattern; None writes every field but ``id`` as ``name: value``.
        name: What the selector is for, named in its warnings (None: only its settings).
    """

    def __init__(self, settings: FewShotSettings, *, embed: TextEmbedder | None = None,
                 model: str | None = None, base_dir: Path | None = None,
                 name: str | None = None):
        """Read the pool of ``settings``.

        Args:
            settings: How examples are chosen.
            embed: See :func:`few_shot`.
            model: The model whose tokenizer counts tokens for the budget.
            base_dir: Where a relative pool path is looked up.
            name: What the selector is for, named in its warnings.

        Raises:
            ConfigError: An unreadable pool or a bad row (naming the file and line), or a
                ``fields`` or ``label`` name in none of the examples (naming the file).
        """
        source = settings.pool
        self.settings = settings
        self.pool = load_pool(source, base_dir)
        filename = str(pool_path(source, base_dir)) if isinstance(source, str) else None
        check_names_occur(self.pool, settings, filename)
        self.example_format = ExampleFormat.of(settings.format, self.pool)
        self.format = self.example_format.pattern
        self.name = name
        self.embed = embed
        self.model = model
        self._fields = tuple(settings.fields) if settings.fields is not None else None
        self._indexes: dict[tuple[str, ...], _Index] = {}
        self._costs: dict[int, int] = {}
        self._budget_warned = False

    def __call__(self, query: Mapping[str, Any], k: int | None = None) -> list[dict[str, Any]]:
        """The examples chosen for ``query``, best first.

        Args:
            query: The input the examples are for (e.g. an eval case's fields).
            k: How many examples, instead of the ``k`` of the settings.

        Returns:
            Up to ``k`` copies of pool rows, never the query's own row.
        """
        k = self.settings.k if k is None else k
        select = self.settings.select
        fields = self._fields_for(query)
        candidates = [i for i, row in enumerate(self.pool)
                      if not _is_same_example(row, query, fields)]
        if k <= 0 or not candidates:
            return []
        if select == "first":
            chosen = self._take(candidates, k)
        elif select == "random":
            order = list(candidates)
            random.Random(f"{self.settings.seed}:{content_id(dict(query))}").shuffle(order)
            chosen = self._take(order, k)
        elif select == "similar":
            chosen = self._take(self._ranked(query, fields, candidates)[0], k)
        elif select == "mmr":
            chosen = self._mmr(query, fields, candidates, k)
        else:
            chosen = self._balanced(query, fields, candidates, k)
        if not chosen:  # only the budget stops every candidate
            self._warn_budget(candidates)
        return [dict(self.pool[i]) for i in chosen]

    def text(self, query: Mapping[str, Any], format: str | None = None,
             separator: str = DEFAULT_SEPARATOR, *, k: int | None = None,
             **deprecated: Any) -> str:
        """The chosen examples rendered one after another.

        Args:
            query: The input the examples are for.
            format: How to write one example (default: :attr:`example_format`).
            separator: What goes between two examples.
            k: How many examples, instead of the ``k`` of the settings.
            **deprecated: ``template``, the old name of ``format``.

        Raises:
            ConfigError: An example lacks a field the format uses (naming the example and
                the format, and whether it was given or the default).
        """
        renamed = rename_deprecated(deprecated, {"template": "format"}, "FewShot.text()",
                                    stacklevel=2)
        if renamed and format is not None:
            raise TypeError("FewShot.text() got 'format' and its old name 'template'")
        format = renamed.get("format", format)
        writer = self.example_format
        if format is not None:
            _check_format(format)
            writer = ExampleFormat(format, "given to text()")
        return separator.join(writer.write(example) for example in self(query, k))

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
            ConfigError: An example lacks ``input_field`` or ``output_field`` (naming the
                example and its fields).
        """
        turns = []
        for example in self(query, k):
            for role, field in (("user", input_field), ("assistant", output_field)):
                if field not in example:
                    fields = ", ".join(map(str, example)) or "none"
                    raise ConfigError(f"{describe_example(example)} has no field {field!r} "
                                      f"(its fields: {fields}) for the {role} turn",
                                      key_path=field)
                turns.append({"role": role, "content": str(example[field])})
        return turns

    # -- selection ----------------------------------------------------------------------

    def _fields_for(self, query: Mapping[str, Any]) -> tuple[str, ...]:
        if self._fields is not None:
            return self._fields
        return tuple(key for key, value in query.items()
                     if isinstance(value, str) and key not in ("id", self.settings.label))

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
        """Tokens of example ``i`` written alone; 0 without a budget (nothing to count)."""
        if self.settings.budget is None:
            return 0
        if i not in self._costs:
            text = self.example_format.write(self.pool[i])
            self._costs[i] = count_tokens(text, self.model)
        return self._costs[i]

    def _fits(self, i: int, used: int) -> bool:
        budget = self.settings.budget
        return budget is None or used + self._cost(i) <= budget

    def _warn_budget(self, candidates: list[int]) -> None:
        """Say once that the budget fits no example: a prompt without them is a choice
        to make knowingly, not one to find out from the scores."""
        if self._budget_warned:
            return
        self._budget_warned = True
        smallest = min(self._cost(i) for i in candidates)
        which = self.settings.describe()
        if self.name:
            which = f"{self.name}: {which}"
        warn(f"few-shot budget of {self.settings.budget} tokens fits no example ({which}; "
             f"the smallest takes {smallest}, written with "
             f"{self.example_format.describe()}); prompts get no examples", stacklevel=3)

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
        lam = self.settings.mmr_lambda
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
        label = self.settings.label
        assert label is not None
        order, _ = self._ranked(query, fields, candidates)
        queues: dict[Hashable, list[int]] = {}
        for i in candidates:  # pool order fixes the label order
            value = self.pool[i].get(label)
            if value is not None:
                queues.setdefault(_label_key(value), [])
        for i in order:
            value = self.pool[i].get(label)
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
            # Imported here: it brings numpy, which loading an eval spec does not need.
            from rank_bm25 import BM25Plus

            bm25 = BM25Plus(tokens, delta=0) if any(tokens) else None
            self._indexes[fields] = _Index([Counter(t) for t in tokens], bm25, texts)
        return self._indexes[fields]

    def _embeddings(self, index: _Index) -> list[list[float]]:
        assert self.embed is not None
        if index.embeddings is None:
            index.embeddings = _embed(self.embed, index.texts)
        return index.embeddings


def _embed(embed: TextEmbedder, texts: list[str]) -> list[list[float]]:
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


def _check_format(pattern: str) -> None:
    problem = format_problem(pattern)
    if problem:
        raise ConfigError(problem, key_path="format")
