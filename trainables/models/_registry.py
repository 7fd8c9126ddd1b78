"""The model registry: ``@register_model`` adds an architecture, ``build_model`` builds any.

An architecture is one function ``fn(num_classes, in_shape, act, norm, *, <options>)``
where ``act`` is an activation factory and ``norm`` a :class:`NormFactory`; its
keyword-only options, named as in the original papers, are what ``build_model``
accepts as ``**arch``; the activation's and the norm's own options come apart, as
``activation_options`` and ``norm_options``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from trainables.layers import activation_factory, list_activations, list_norms, norm_factory

ModelFn = Callable[..., nn.Module]
_POSITIONAL = ("num_classes", "in_shape", "act", "norm")


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture: its builder and the activations/norms it takes (None: all)."""

    name: str
    fn: ModelFn
    activations: tuple[str, ...] | None = None
    norms: tuple[str, ...] | None = None

    @property
    def options(self) -> tuple[str, ...]:
        params = inspect.signature(self.fn).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)

    def accepted_activations(self) -> list[str]:
        return list(self.activations) if self.activations is not None else list_activations()

    def accepted_norms(self) -> list[str]:
        return list(self.norms) if self.norms is not None else list_norms()


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    fn: ModelFn | None = None,
    *,
    activations: Sequence[str] | None = None,
    norms: Sequence[str] | None = None,
) -> ModelFn | Callable[[ModelFn], ModelFn]:
    """Register ``fn`` under its own name; bare, or with the activations/norms it is limited to."""

    def add(builder: ModelFn) -> ModelFn:
        params = list(inspect.signature(builder).parameters)
        if tuple(params[:4]) != _POSITIONAL:
            raise TypeError(
                f"a model builder takes {_POSITIONAL} first, {builder.__name__} takes {params}"
            )
        if builder.__name__ in _MODELS:
            raise ValueError(f"model {builder.__name__!r} is already registered")
        _MODELS[builder.__name__] = ModelEntry(
            builder.__name__,
            builder,
            tuple(activations) if activations is not None else None,
            tuple(norms) if norms is not None else None,
        )
        return builder

    return add(fn) if fn is not None else add


def list_models() -> list[str]:
    return sorted(_MODELS)


def get_model_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {list_models()}")
    return _MODELS[name]


def _check_in_shape(in_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(in_shape) if isinstance(in_shape, (tuple, list)) else ()
    if len(shape) not in (1, 3) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ValueError(
            f"in_shape must be (channels, height, width) or (features,) of positive ints, "
            f"got {in_shape!r}"
        )
    return shape


def _check_choice(entry: ModelEntry, kind: str, value: str, allowed: list[str]) -> None:
    if value not in allowed:
        raise ValueError(f"model {entry.name!r} takes {kind} one of {allowed}, got {value!r}")


def _materialize_lazy(model: nn.Module, in_shape: tuple[int, ...]) -> None:
    if not any(is_lazy(p) for p in model.parameters()):
        return
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(2, *in_shape))
    model.train(was_training)


def build_model(
    name: str,
    num_classes: int,
    in_shape: Sequence[int],
    activation: str = "relu",
    norm: str = "bn",
    *,
    activation_options: Mapping[str, object] | None = None,
    norm_options: Mapping[str, object] | None = None,
    **arch: object,
) -> nn.Module:
    """Build architecture ``name`` with every activation and normalization from the factories.

    ``activation_options`` go to the activation's module (``{"p": 0.95}`` for
    Drop-Activation), ``norm_options`` to the norm layer's (``{"n": 2}`` for VCL), ``arch``
    to the architecture (``depth=110``). Lazy parameters (VCL ``per="neuron"``) are
    materialised by one no-grad forward, so an optimizer can be built at once.
    """
    entry = get_model_entry(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    shape = _check_in_shape(in_shape)
    unknown = sorted(set(arch) - set(entry.options))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for model {entry.name!r}; it takes "
            f"{sorted(entry.options)} (activation and norm options go in activation_options "
            "and norm_options)"
        )
    _check_choice(entry, "activation", activation, entry.accepted_activations())
    _check_choice(entry, "norm", norm, entry.accepted_norms())
    act = activation_factory(activation, **(activation_options or {}))
    norms = norm_factory(norm, **(norm_options or {}))
    model = entry.fn(num_classes, shape, act, norms, **arch)
    _materialize_lazy(model, shape)
    return model
