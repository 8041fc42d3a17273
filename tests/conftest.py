"""Shared fixtures: tiny encoders (session), real offline encoders (when ../shared exists)."""

from __future__ import annotations

import os

import pytest

from tests.helpers import SHARED, SHARED_REASON, make_tiny_bert, make_tiny_timm

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "text_model": str(make_tiny_bert(root / "tiny-bert")),
        "image_model": "test_efficientnet",
        "image_weights": str(make_tiny_timm(root / "test_efficientnet.safetensors")),
    }


@pytest.fixture(scope="session")
def shared_dir():
    if not (SHARED / "data" / "tmdb-similar" / "movies.csv").is_file():
        pytest.skip(SHARED_REASON)
    return SHARED


def pytest_addoption(parser):
    parser.addoption("--soak", action="store_true", help="run the long reliability tier")
