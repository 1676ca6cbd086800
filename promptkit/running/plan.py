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
from ..datasets import Case, count_cases, iter_cases
from ..errors import ConfigError, PromptkitError
from ..templates import PromptTemplate, TemplateStore
from .client import EndpointClient
from .spec import EvalSpec, LoadedSpec, PromptVariant, Provider

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

    @property
    def spec(self) -> EvalSpec:
        return self.loaded.spec

    def cases(self, limit: int | None = None) -> Iterator[Case]:
        return iter_cases(self.loaded.dataset_path, self.spec.cases, limit)

    def count(self, limit: int | None = None) -> int:
        return count_cases(self.loaded.dataset_path, self.spec.cases, limit)

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
            values[variant.fewshot.var] = selector(case.vars)
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
        """The request body for one rendered prompt."""
        key = "messages" if provider.api == "chat" else "prompt"
        return {"model": provider.model or provider.id, key: prompt,
                **self.params(variant, provider)}

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
            plan.fewshots[variant.id] = build_fewshot(plan, variant.fewshot)
            if variant.fewshot.embeddings:
                plan.lexical[variant.id] = build_fewshot(plan, variant.fewshot, lexical=True)
        if variant.cot is not None:
            plan.cots[variant.id] = build_cot(variant.cot)
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
    check_assertion_variables(plan, first)
    return plan


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


def check_assertion_variables(plan: EvalPlan, case: Case) -> None:
    """Render every assertion string with the first case, before any request.

    A typo such as ``value: "{{ lable }}"`` would otherwise fail every case: a silent 0%.

    Raises:
        ConfigError: naming the spec file, the assertion and the problem; for a missing
            variable, the fields the case has.
    """
    loaded = plan.loaded
    for index, assertion in enumerate(plan.spec.assert_):
        for key, source in assertion.template_strings():
            for variant in plan.spec.prompts:
                values = plan.variables(variant, case, offline=True)
                try:
                    plan.store.render_string(source, values)
                except PromptkitError as exc:
                    message = getattr(exc, "message", str(exc))
                    if "is undefined" in message:
                        fields = ", ".join(sorted(map(str, case.vars))) or "none"
                        message += f" (case {case.id!r} has: {fields})"
                    raise loaded.error(f"{source[:60]!r}: {message}",
                                       ["assert", index, key]) from None


def build_fewshot(plan: EvalPlan, config: FewShotSettings, lexical: bool = False
                  ) -> FewShot:
    """The example selector of a variant's ``fewshot:`` settings (``lexical``: BM25 even
    when ``embeddings:`` is set). The settings were validated with the spec; reading the
    pool may still fail, naming the pool file."""
    from ..builders.fewshot import few_shot

    loaded = plan.loaded
    embed = None
    if config.embeddings and not lexical:
        embed = GraderEmbedder(grader(loaded, config.embeddings))
        plan.embedders.append(embed)
    return few_shot(config, embed=embed, base_dir=loaded.base_dir)


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
