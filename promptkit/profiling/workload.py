"""What a profile sends, and to whom: targets (providers) and their workloads (prompts).

A :class:`Target` is one provider: an eval's, ``--base-url`` with ``--model``, or the
embedded local server (``local``, ``local:model.gguf``). Each has one or more
:class:`Workload`: synthetic prompts of an exact token count (``--input-tokens``), one fixed
text (``--prompt-text``), or an eval's rendered prompts (its first cases through every
prompt variant). A workload makes the body of request ``i``; requests cycle through an
eval's prompts, and synthetic prompts differ from their first token on, so that no server
answers one from the prefix cache another filled.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError, PromptkitError
from ..running.local import MODEL_ALIAS
from ..running.providers import Api, Provider, request_params
from ..tokens import count_prompt_tokens, count_tokens, encoding_for

# Plain ASCII prose: any slice of its tokens decodes to text that encodes back to the same
# tokens (or within one of them at the cut, which text_of_tokens corrects).
CORPUS = (
    "The river town woke early. Bakers lit their ovens before dawn, and the smell of bread "
    "drifted over the bridge where fishermen checked their nets. By seven the market square "
    "was full: farmers sold apples, cabbages and honey, a tailor mended coats under a green "
    "awning, and children ran between the stalls with paper kites. The clock on the old hall "
    "had been five minutes slow for as long as anyone remembered, so the town kept two "
    "times, the clock's and the sun's, and nobody minded. In the afternoon the ferry crossed "
    "twice, carrying letters, a doctor, three goats and a piano bound for the school. "
    "Evening brought rain from the hills; lamps came on one by one along the quay, the inn "
    "filled with talk of the harvest and the price of timber, and somewhere a violin played "
    "the same tune it had played every night that summer. "
)
PROMPT_STRIDE = 37  # tokens between the starts of consecutive synthetic prompts


@dataclass(frozen=True)
class Workload:
    """The prompts one profile run sends.

    Attributes:
        label: How tables name it: ``"256 tokens"``, ``"prompt text"``, ``"eval"``.
        input_tokens: The synthetic prompt's size in tokens (None for other workloads).
        body: Request ``i``'s body (model, messages or prompt, the eval's parameters),
            without ``stream`` or ``max_tokens``, which the profiler sets.
    """

    label: str
    input_tokens: int | None
    body: Callable[[int], dict[str, Any]]


@dataclass(frozen=True)
class Target:
    """One provider to profile and what to send it."""

    provider: Provider
    workloads: tuple[Workload, ...]

    @property
    def name(self) -> str:
        return self.provider.id


@functools.cache
def _corpus_tokens(model: str | None) -> tuple[int, ...]:
    return tuple(encoding_for(model).encode(CORPUS, disallowed_special=()))


def text_of_tokens(tokens: int, model: str | None = None, offset: int = 0) -> str:
    """A text of exactly ``tokens`` tokens (counted as :func:`promptkit.tokens.count_tokens`
    counts them for ``model``), read from :data:`CORPUS` starting ``offset`` tokens in.

    Raises:
        PromptkitError: no such text could be made (a tokenizer that merges across every
            cut; not seen with tiktoken's encodings).
    """
    corpus = _corpus_tokens(model)
    start = offset % len(corpus)
    repeats = (start + 2 * tokens) // len(corpus) + 2
    stream = corpus * repeats
    encoding = encoding_for(model)
    length = tokens
    for _ in range(16):
        text = encoding.decode(list(stream[start:start + length]))
        found = count_tokens(text, model)
        if found == tokens:
            return text
        length += tokens - found
    raise PromptkitError(f"cannot make a prompt of exactly {tokens} tokens")


def as_prompt(text: str, api: Api) -> dict[str, Any]:
    """The body keys that send ``text`` as the prompt: one user message, or the text."""
    if api == "chat":
        return {"messages": [{"role": "user", "content": text}]}
    return {"prompt": text}


def served_model(provider: Provider) -> str:
    """The model name requests carry (the local server serves its model under an alias)."""
    if provider.is_local:
        return provider.model or MODEL_ALIAS
    return provider.model or provider.id


def synthetic_workload(provider: Provider, tokens: int) -> Workload:
    """Prompts of exactly ``tokens`` tokens, each starting elsewhere in the corpus."""
    model = served_model(provider)
    params = request_params(provider.api, provider.params)

    def body(index: int) -> dict[str, Any]:
        text = text_of_tokens(tokens, provider.model, index * PROMPT_STRIDE)
        return {"model": model, **as_prompt(text, provider.api), **params}

    return Workload(f"{tokens} tokens", tokens, body)


def fixed_workload(provider: Provider, text: str) -> Workload:
    """The same ``--prompt-text`` for every request."""
    prompt = {"model": served_model(provider), **as_prompt(text, provider.api),
              **request_params(provider.api, provider.params)}
    return Workload("prompt text", None, lambda index: dict(prompt))


def synthetic_workloads(provider: Provider, input_tokens: Sequence[int],
                        prompt_text: str | None) -> tuple[Workload, ...]:
    if prompt_text is not None:
        return (fixed_workload(provider, prompt_text),)
    return tuple(synthetic_workload(provider, tokens) for tokens in input_tokens)


def endpoint_provider(base_url: str, model: str, api: Api = "chat",
                      api_key_env: str | None = None) -> Provider:
    """The provider ``--base-url URL --model NAME`` names.

    Raises:
        ConfigError: a URL or variable name the provider refuses (one line, the values
            not repeated).
    """
    try:
        return Provider(id=model, base_url=base_url, model=model, api=api,
                        api_key_env=api_key_env)
    except ValidationError as exc:  # its str() would repeat the input values
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        flag = "--api-key-env" if "api_key_env" in message else "--base-url"
        raise ConfigError(f"{flag}: {message}") from None


def local_provider(text: str) -> Provider:
    """``local`` or ``local:/path/model.gguf`` as a provider.

    Raises:
        ConfigError: the GGUF file does not exist.
    """
    provider = Provider.model_validate(text)
    if provider.local_model and not Path(provider.local_model).is_file():
        raise ConfigError(f"{text}: no such model file")
    return provider


def eval_targets(spec_path: str | Path, *, limit: int, prompt_ids: tuple[str, ...] = (),
                 provider_ids: tuple[str, ...] = ()) -> list[Target]:
    """The eval's providers, each with the eval's rendered prompts: its first ``limit``
    cases through every prompt variant (few-shot examples chosen without embeddings),
    with the params and structured output the eval would send.

    Raises:
        PromptkitError: the spec, its templates or a case are invalid; a key is missing.
    """
    from ..running.plan import check_api_keys, plan_eval
    from ..running.spec import apply_overrides, load_spec

    loaded = apply_overrides(load_spec(spec_path), prompt_ids=prompt_ids,
                             provider_ids=provider_ids)
    plan = plan_eval(loaded)
    check_api_keys(plan)
    cases = list(plan.cases(limit))
    targets = []
    for provider in plan.spec.providers:
        if provider.is_local:
            provider = provider.model_copy(update={"model": served_model(provider)})
        bodies = [plan.body(variant, provider, plan.prompt(
                      variant, provider, plan.variables(variant, case, offline=True)))
                  for case in cases for variant in plan.spec.prompts]
        workload = Workload(f"eval ({len(bodies)} prompts)", None,
                            lambda index, bodies=bodies: dict(bodies[index % len(bodies)]))
        targets += [Target(endpoint, (workload,)) for endpoint in replica_targets(provider)]
    return targets


def replica_targets(provider: Provider) -> list[Provider]:
    """``provider`` as endpoints to profile: itself, or one per replica when its
    ``base_url`` is a list (``id[0]``, ``id[1]``...), as each is a server of its own."""
    if not isinstance(provider.base_url, list):
        return [provider]
    return [provider.model_copy(update={"id": f"{provider.id}[{index}]", "base_url": url})
            for index, url in enumerate(provider.base_url)]


def input_tokens_of(body: dict[str, Any], model: str | None) -> int:
    """The prompt's tokens as tiktoken counts them (when the server reports no usage)."""
    return count_prompt_tokens(body.get("messages") or body.get("prompt") or "", model)


DEFAULT_INPUT_TOKENS = (256, 1024, 2048)
DEFAULT_CASES = 16


def build_targets(sources: Sequence[str] = (), *, base_url: str | None = None,
                  model: str | None = None, api: Api | None = None,
                  api_key_env: str | None = None, input_tokens: Sequence[int] | None = None,
                  prompt_text: str | None = None, limit: int | None = None,
                  prompt_ids: tuple[str, ...] = (), provider_ids: tuple[str, ...] = ()
                  ) -> list[Target]:
    """The targets the command line names: each source an eval spec (its providers and
    prompts) or ``local[:MODEL.gguf]``, and ``base_url`` with ``model``.

    Synthetic prompts of ``input_tokens`` tokens (default 256, 1024 and 2048), or
    ``prompt_text``, go to every target that is not an eval, and to the eval's providers
    too when given.

    Raises:
        PromptkitError: no target, options that do not go together, an invalid spec.
    """
    if input_tokens is not None and prompt_text is not None:
        raise PromptkitError("--input-tokens and --prompt-text: give one or the other")
    if prompt_text is not None and not prompt_text.strip():
        raise PromptkitError("--prompt-text is empty: give the prompt to send")
    if bool(base_url) != bool(model):
        raise PromptkitError("--base-url and --model go together")
    if not base_url and (api or api_key_env):
        raise PromptkitError("--api and --api-key-env apply to --base-url")
    evals = [source for source in sources if not _is_local(source)]
    if not evals and (prompt_ids or provider_ids or limit is not None):
        raise PromptkitError("--prompt, --provider and --limit apply to an eval spec")
    synthetic = input_tokens is not None or prompt_text is not None
    sizes = tuple(input_tokens or DEFAULT_INPUT_TOKENS)
    targets: list[Target] = []
    for source in sources:
        if _is_local(source):
            provider = local_provider(source)
            targets.append(Target(provider, synthetic_workloads(provider, sizes, prompt_text)))
            continue
        for target in eval_targets(source, limit=limit or DEFAULT_CASES,
                                   prompt_ids=prompt_ids, provider_ids=provider_ids):
            workloads = (synthetic_workloads(target.provider, sizes, prompt_text)
                         if synthetic else target.workloads)
            targets.append(Target(target.provider, workloads))
    if base_url and model:
        provider = endpoint_provider(base_url, model, api or "chat", api_key_env)
        targets.append(Target(provider, synthetic_workloads(provider, sizes, prompt_text)))
    if not targets:
        raise PromptkitError("nothing to profile: give an eval spec, local (or "
                             "local:MODEL.gguf), or --base-url with --model")
    return targets


def _is_local(source: str) -> bool:
    return source == "local" or source.startswith("local:")
