"""Start-up's objects stay out of full garbage collections while the app serves, and are
collectable again once it stops (docs/PERFORMANCE.md section 1: 0.35-0.44 s stalls before)."""

import gc

from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.conftest import tiny_settings


def test_startup_objects_are_frozen_while_serving_and_released_at_shutdown(
    tiny_models, tiny_embedder, tmp_path
):
    gc.unfreeze()  # whatever an earlier app in this process left
    settings = tiny_settings(tiny_models, tmp_path / "data")
    with TestClient(create_app(settings, lambda _s: tiny_embedder)) as client:
        frozen = gc.get_freeze_count()
        # the tiny encoders, torch, transformers, the app: far more objects than a request makes
        assert frozen > 50_000
        assert client.get("/health").status_code == 200
        # what a request creates is not frozen: the frozen set did not grow (it shrinks as
        # start-up objects die by reference counting)
        assert gc.get_freeze_count() <= frozen
        young = sum(len(gc.get_objects(generation)) for generation in range(3))
        assert young < frozen / 2  # a full collection walks these only
    assert gc.get_freeze_count() == 0


def test_the_setting_turns_it_off(tiny_models, tiny_embedder, tmp_path):
    gc.unfreeze()
    settings = tiny_settings(tiny_models, tmp_path / "data", gc_freeze=False)
    with TestClient(create_app(settings, lambda _s: tiny_embedder)):
        assert gc.get_freeze_count() == 0


def test_a_slow_full_collection_is_logged(monkeypatch, caplog):
    from app import gc_freeze

    monkeypatch.setattr(gc_freeze, "SLOW_COLLECTION_SECONDS", 0.0)  # every one is "slow"
    watcher = gc_freeze.SlowCollectionLog()
    watcher.install()
    try:
        with caplog.at_level("WARNING", logger="movierec.gc"):
            gc.collect(0)  # a young collection is never reported
            assert not caplog.records
            gc.collect()
    finally:
        watcher.remove()
    assert [r.message for r in caplog.records if "slow garbage collection" in r.message]
    assert watcher not in gc.callbacks
