"""The one loading path of the harness: a ``ModelRequest`` -> the run's ``ModelSet``.

Zoo names (``smollm2-135m``, the Qwen pair) resolve to the offline cache and
are prepared on first use (registered with ``svip.adapters.loading`` here, so
an adapter loading a model by name finds them too); anything else goes to
transformers unchanged. The primitives (``Placement``, ``load_model``, ...)
live in ``svip.adapters.loading`` and keep their names here.

A kind that brings its own models (``MethodKind.load_models``) loads them;
otherwise the run gets the target, the draft (tokenizers checked) and the
tokenizer, and every other resource a kind needs is loaded by that kind when
its first method is built.
"""

from __future__ import annotations

from svip.adapters import loading as primitives
from svip.adapters import registry
from svip.adapters.kinds import ModelSet
from svip.adapters.loading import (  # noqa: F401 -- the primitives keep their names here
    DTYPES,
    ModelLoadError,
    ModelRequest,
    Placement,
    check_same_tokenizer,
    keep_first_layers,
    load_model,
    load_tokenizer,
    register_names,
    resolve,
)
from svip.sampling import SamplingConfig

from . import models as zoo

__all__ = sorted({*primitives.__all__, "load_models"} - {"register_names"})

register_names(zoo.ZOO, zoo.prepare)


def load_models(
    request: ModelRequest, sampling: SamplingConfig | None = None, *, record_cross_entropy: bool = False
) -> ModelSet:
    """A ``ModelSet`` for the request: a kind's own models, or target, draft (tokenizers checked) and tokenizer."""
    sampling = sampling or SamplingConfig()
    loader = registry.loader_of(request.methods)
    if loader is not None:
        models = loader.load_models(request, sampling)
        models.loaded_by = loader.name
    else:
        tokenizer = load_tokenizer(request.target)
        target = load_model(request.target, request.target_placement)
        draft = None
        if request.draft:
            check_same_tokenizer(tokenizer, load_tokenizer(request.draft))
            draft = load_model(request.draft, request.draft_placement, layers=request.draft_layers)
        models = ModelSet(target, draft, tokenizer, sampling, options=dict(request.options), request=request)
    models.record_cross_entropy = record_cross_entropy
    return models
