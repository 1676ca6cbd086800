"""Checking and preparing a run before any request: templates, builders, keys, assertions.

:func:`plan_eval` turns a loaded spec into an :class:`EvalPlan`: its templates loaded, its
few-shot selectors and chain-of-thought setups built, and the first case rendered through
every prompt and assertion, so anything that would fail every case fails now, as invalid
input (exit 2), before a request is paid for. A dry run uses the same plan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..builders.cot import CotSettings
from ..builders.fewshot_settings import FewShotSettings
from ..datasets import RESERVED_KEYS, Case, count_cases, iter_cases
from ..errors import ConfigError, PromptkitError, warn
from ..scoring.assertion import Assertion
from ..templates import PromptTemplate, TemplateStore
from .checks import (
    case_assertions,
    check_assertion_texts,
    check_case_variables,
    check_category,
    check_conversation,
    variable_needs,
)
from .client import EndpointClient
from .spec import EvalSpec, LoadedSpec, PromptVariant, Provider
from .turns import (
    converses,
)

if TYPE_CHECKING:
    from ..builders.cot import ChainOfThought
    from ..builders.fewshot import FewShot



@dataclass
class EvalPlan:
    """A spec with templates loaded and inputs checked: ready to run or dry-run."""

    loaded: LoadedSpec
    store: TemplateStore
    templates: dict[str, PromptTemplate]
    fewshots: dict[str, FewShot] = field(default_factory=dict)  # by variant id
    cots: dict[str, ChainOfThought] = field(default_factory=dict)  # by variant id
    # BM25 stand-ins for selectors that rank by embeddings: what a dry run and the
    # pre-run check use, since they must not call any endpoint.
    lexical: dict[str, FewShot] = field(default_factory=dict)
    embedders: list[GraderEmbedder] = field(default_factory=list)
    case_assertion_cache: dict[str, list[Assertion]] = field(default_factory=dict)

    @property
    def spec(self) -> EvalSpec:
        return self.loaded.spec

    def cases(self, limit: int | None = None) -> Iterator[Case]:
        return iter_cases(self.loaded.dataset_path, self.inline_rows, limit,
                          locate=self.loaded.error)

    def count(self, limit: int | None = None) -> int:
        return count_cases(self.loaded.dataset_path, self.inline_rows, limit,
                           locate=self.loaded.error)

    def assertions(self, variant: PromptVariant, case: Case) -> list[Assertion]:
        """The assertions a case is scored with: the spec's (unless the variant's
        ``assert_mode`` is ``replace``), the variant's, then the case's own."""
        base = [] if variant.assert_mode == "replace" else self.spec.assert_
        return [*base, *variant.assert_, *case_assertions(self, case)]

    def located_assertions(self, variant: PromptVariant, index: int, case: Case | None = None
                           ) -> Iterator[tuple[list[str | int], Assertion]]:
        """(key path, assertion) of :meth:`assertions`; the path is in the spec, or starts
        with ``"case"`` for the case's own (then it is within the case's row)."""
        if variant.assert_mode != "replace":
            yield from ((["assert", i], a) for i, a in enumerate(self.spec.assert_))
        yield from ((["prompts", index, "assert", i], a) for i, a in enumerate(variant.assert_))
        if case is not None:
            yield from ((["case", "assert", i], a)
                        for i, a in enumerate(case_assertions(self, case)))

    @property
    def inline_rows(self) -> list[dict[str, Any]] | None:
        cases = self.spec.cases
        return None if cases is None else [case.as_row() for case in cases]

    def variables(self, variant: PromptVariant, case: Case, *, offline: bool = False
                  ) -> dict[str, Any]:
        """Template variables: the case's fields, the variant's vars, selected examples.

        ``offline`` selects examples without calling an embeddings endpoint (BM25 in place
        of embeddings), for dry runs and checks.
        """
        values = {**case.vars, **variant.vars}
        if variant.id in self.fewshots:
            selector = self.fewshots[variant.id]
            if offline:
                selector = self.lexical.get(variant.id, selector)
            values[variant.fewshot.var] = selector(case.query)
        return values

    def prompt(self, variant: PromptVariant, provider: Provider, values: dict[str, Any]
               ) -> str | list[dict[str, str]]:
        """The rendered prompt (messages or text), with the CoT trigger when configured."""
        template = self.templates[variant.id]
        prompt = (template.render(values) if provider.api == "chat"
                  else template.render_text(values))
        cot = self.cots.get(variant.id)
        return cot.apply(prompt) if cot is not None else prompt

    def samples(self, variant: PromptVariant) -> int:
        """Requests per case: the self-consistency sample count, else 1."""
        cot = self.cots.get(variant.id)
        return cot.samples if cot is not None and cot.style == "self-consistency" else 1

    def params(self, variant: PromptVariant, provider: Provider) -> dict[str, Any]:
        """Model params: the template's, then the provider's, then the variant's win."""
        return {**self.templates[variant.id].params, **provider.params, **variant.params}

    def body(self, variant: PromptVariant, provider: Provider, prompt: Any) -> dict[str, Any]:
        """The request body for one rendered prompt: the template's tools (chat API only)
        and its ``output`` schema as the provider's ``structured_output`` asks for it, then
        the params (which win over both), as :func:`~.providers.request_params` passes
        them (``stream`` left out; no tool params on the completions API).

        Raises:
            ConfigError: the output schema needs a grammar llama_cpp cannot build.
        """
        from .providers import request_params, structured_output

        template = self.templates[variant.id]
        chat = provider.api == "chat"
        body: dict[str, Any] = {"model": provider.model or provider.id,
                                "messages" if chat else "prompt": prompt}
        if chat and template.tools:
            body["tools"] = template.tools
        body.update(structured_output(provider, template))
        return {**body, **request_params(provider.api, template.params, provider.params,
                                         variant.params)}

    def category(self, case: Case) -> str | None:
        """The case's category: its ``category_field`` value when the spec names one, else
        its ``category`` key (a number as its text); None without one."""
        field = self.spec.category_field
        value = case.vars.get(field) if field else case.reserved.get("category")
        return None if value is None or not str(value).strip() else str(value).strip()

    def max_turns(self, variant: PromptVariant) -> int:
        """Requests per conversation case: the variant's ``max_turns``, else the spec's."""
        return variant.max_turns or self.spec.max_turns

    def sampling(self, variant: PromptVariant, provider: Provider) -> bool:
        """Whether answers vary between requests (then each sample is cached apart)."""
        temperature = self.params(variant, provider).get("temperature", 1)
        return self.spec.repeat > 1 or temperature != 0


def plan_eval(loaded: LoadedSpec) -> EvalPlan:
    """Load templates and check everything that would fail every case.

    Raises:
        PromptkitError: unknown template, assertion problems, or a first case that
            cannot be rendered (usually a missing variable): invalid input, exit 2.
    """
    spec = loaded.spec
    store = TemplateStore(loaded.templates_dir)
    templates = {}
    for i, variant in enumerate(spec.prompts):
        try:
            templates[variant.id] = store.get(variant.template)
        except PromptkitError as exc:  # the spec names a template the store does not have
            raise loaded.error(str(exc), ["prompts", i]) from None
    plan = EvalPlan(loaded, store, templates)
    for variant in spec.prompts:  # settings were validated with the spec; pools read now
        if variant.fewshot is not None:
            name = f"prompt {variant.id!r}"
            plan.fewshots[variant.id] = build_fewshot(plan, variant.fewshot, name=name)
            if variant.fewshot.embeddings:
                plan.lexical[variant.id] = build_fewshot(plan, variant.fewshot, lexical=True,
                                                         name=name)
        if variant.cot is not None:
            plan.cots[variant.id] = build_cot(variant.cot)
    for index, variant in enumerate(spec.prompts):  # a case never passes these on
        template = plan.templates[variant.id]
        for where, assertion in plan.located_assertions(variant, index):
            check_tool_names(plan, variant, where, assertion)
            if (assertion.base_type == "json-schema" and assertion.value is None
                    and template.output_schema is None):
                raise loaded.error(f"json-schema without a value checks the template's "
                                   f"output: schema, and {template.ref} (prompt "
                                   f"{variant.id!r}) has none; give the schema as value",
                                   where)
        clash = sorted((set(template.inputs) | template.variables) & set(RESERVED_KEYS))
        if clash and clash[0] not in variant.vars:
            reserved = ", ".join(RESERVED_KEYS)
            raise loaded.error(
                f"{template.ref} reads {clash[0]!r}, a reserved case key ({reserved}): a "
                f"case's {clash[0]!r} configures the case and never reaches a template; "
                "rename the input (and the dataset field)", ["prompts", index])
    first = next(plan.cases(1), None)
    if first is None:
        raise loaded.error("the dataset has no cases", ["dataset" if spec.dataset else "cases"])
    for variant in spec.prompts:
        for api in {p.api for p in spec.providers}:
            probe = Provider.model_construct(api=api, id="probe")
            try:
                plan.prompt(variant, probe, plan.variables(variant, first,
                                                                   offline=True))
            except PromptkitError as exc:
                raise type(exc)(f"{exc} (case {first.id!r}, prompt {variant.id!r})") from None
    check_assertion_texts(plan, first)
    check_every_case(plan)
    return plan


def check_every_case(plan: EvalPlan) -> None:
    """Check every case before any request: its variables, its own assertions, a
    conversation's keys and its category (see :mod:`.checks`); warn when the spec's
    ``category_field`` names a field no case has."""
    needs = variable_needs(plan)
    field, has_field = plan.spec.category_field, False
    for case in plan.cases():  # every case, before any request
        check_case_variables(plan, case, needs)
        if case.asserts:
            case_assertions(plan, case)
            check_assertion_texts(plan, case, own_only=True)
        if converses(case.reserved):
            check_conversation(plan, case)
        check_category(plan, case)
        has_field = has_field or bool(field and field in case.vars)
    if field and not has_field:
        warn(f"category_field {field!r}: no case has this field, so there is no "
             "per-category breakdown")


def check_tool_names(plan: EvalPlan, variant: PromptVariant, where: list[str | int],
                     assertion: Assertion) -> None:
    """A ``tool-call`` (or ``not-tool-call``, ``tool-call-f1``) names tools the prompt's
    template declares: a typo would pass (or fail) every case unseen.

    Raises:
        ConfigError: at the assertion's key.
    """
    kind = assertion.base_type
    if kind == "tool-call":
        named = [("name", assertion.name), *(("order", n) for n in assertion.order or [])]
    elif kind == "tool-call-f1" and isinstance(assertion.value, list):
        named = [("value", c.get("name")) for c in assertion.value if isinstance(c, dict)]
    else:
        return
    template = plan.templates[variant.id]
    declared = {tool["function"]["name"] for tool in template.tools}
    for key, name in named:
        if isinstance(name, str) and "{" not in name and name not in declared:
            known = ", ".join(sorted(declared)) or "none: it has no tools"
            raise plan.loaded.error(f"{assertion.type} names {name!r}, a tool {template.ref} "
                                    f"(prompt {variant.id!r}) does not declare (declared: "
                                    f"{known})", [*where, key])


def check_api_keys(plan: EvalPlan) -> None:
    """Every ``api_key_env`` names a variable that is set to a usable key.

    Raises:
        ConfigError: located at the provider's ``api_key_env`` in the spec.
    """
    spec = plan.spec
    for where, providers in (("providers", spec.providers), ("graders", spec.graders)):
        for index, provider in enumerate(providers):
            try:
                provider.api_key()
            except ConfigError as exc:
                raise plan.loaded.error(exc.message, [where, index, "api_key_env"]) \
                    from None


def build_fewshot(plan: EvalPlan, config: FewShotSettings, lexical: bool = False,
                  name: str | None = None) -> FewShot:
    """The example selector of a variant's ``fewshot:`` settings (``lexical``: BM25 even
    when ``embeddings:`` is set; ``name``: what its warnings call it). The settings were
    validated with the spec; reading the pool may still fail, naming the pool file."""
    from ..builders.fewshot import few_shot

    loaded = plan.loaded
    embed = None
    if config.embeddings and not lexical:
        embed = GraderEmbedder(grader(loaded, config.embeddings))
        plan.embedders.append(embed)
    return few_shot(config, embed=embed, base_dir=loaded.base_dir, name=name)


def grader(loaded: LoadedSpec, provider_id: str) -> Provider:
    """The provider an ``embeddings:`` setting names (checked when the spec loaded)."""
    spec = loaded.spec
    return next(p for p in [*spec.graders, *spec.providers] if p.id == provider_id)


class GraderEmbedder:
    """A synchronous embedder (what few-shot selection calls) over the runner's client.

    Example selection runs in a worker thread; each call hands the request to the run's
    event loop, so embeddings get the same retries, rate limits and redaction as every
    other request. Outside a run (no loop bound) it refuses to call anything.
    """

    def __init__(self, provider: Provider):
        self.provider = provider
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client: EndpointClient | None = None

    def __call__(self, texts: list[str]) -> list[list[float]]:
        if self.loop is None or self.client is None:
            raise PromptkitError("embeddings are only requested during a run")
        future = asyncio.run_coroutine_threadsafe(self.client.embed(texts), self.loop)
        return future.result()


def build_cot(config: CotSettings) -> ChainOfThought:
    """The chain-of-thought setup of a variant's ``cot:`` (validated with the spec)."""
    from ..builders.cot import chain_of_thought

    return chain_of_thought(config)
