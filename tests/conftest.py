"""Shared fixtures: the real bundled model (SmolLM2-135M, fp32) and a tiny random one for mechanics."""

from __future__ import annotations

import os

# Tests never reach a model hub: unknown ids must fail fast and clearly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from svip.eval.loading import load_model, load_tokenizer

REAL_MODEL = "smollm2-135m"


@pytest.fixture(scope="session")
def smol_tokenizer():
    return load_tokenizer(REAL_MODEL)


@pytest.fixture(scope="session")
def smol_target():
    return load_model(REAL_MODEL)


@pytest.fixture(scope="session")
def smol_self_draft():
    """The same weights as the target: acceptance ~1, exercises the bookkeeping."""
    return load_model(REAL_MODEL)


@pytest.fixture(scope="session")
def smol_shallow_draft():
    """The target's first 4 of 30 layers: acceptance ~0, exercises the rejection path."""
    return load_model(REAL_MODEL, layers=4)


@pytest.fixture(scope="session")
def smol_mid_draft():
    """The target's first 12 of 30 layers: acceptance in between, so draft lengths vary."""
    return load_model(REAL_MODEL, layers=12)
