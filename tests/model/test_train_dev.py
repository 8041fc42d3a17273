"""Training the small preset on real cached dev features (MiniLM + EfficientNet-Lite0) learns."""

import pytest

from model.config import TrainConfig, scaled_lr
from model.data import load_dataset
from model.evaluate import evaluate_methods
from model.features import FeatureCache, compute_features


@pytest.fixture(scope="session")
def dev_features(shared_dir, tmp_path_factory):
    ds = load_dataset(shared_dir / "data" / "tmdb-similar")
    cache = compute_features(
        ds,
        text_model=str(shared_dir / "models/all-MiniLM-L6-v2"),
        image_model="tf_efficientnet_lite0",
        image_weights=str(shared_dir / "models/tf_efficientnet_lite0/model.safetensors"),
        device="cpu",
        progress=False,
    )
    path = tmp_path_factory.mktemp("dev") / "features.safetensors"
    cache.save(path)
    return ds, path


@pytest.mark.slow
def test_feature_cache_round_trip(dev_features):
    ds, path = dev_features
    cache = FeatureCache.load(path)
    assert cache.text.shape == (1000, 384) and cache.image.shape == (1000, 1280)
    assert cache.meta["movies_without_images"] == 0 and cache.meta["dataset"] == ds.fingerprint()


def _train(dev_features, tmp_path, head, epochs=10, patience=5):
    from model.train import train

    ds, path = dev_features
    cache = FeatureCache.load(path)
    cfg = TrainConfig(
        loss="improved", batch_size=64, lr=scaled_lr(64), epochs=epochs, patience=patience, seed=0
    )
    result = train(
        cache, ds, out_dir=tmp_path / head, cfg=cfg, preset="small", head=head, progress=False
    )
    results = evaluate_methods(cache, ds, checkpoints={head: str(tmp_path / head)})
    trained = results[head]["thesis_recall@20"]
    untrained = results["untrained: concat -> random FC 256"]["thesis_recall@20"]
    print(
        f"\n[train {head}] val loss {result.first_val_loss:.5f} -> {result.best_val_loss:.5f} "
        f"(epoch {result.best_epoch}, {result.seconds:.0f}s); test Recall@20 trained "
        f"{trained:.3f} vs untrained {untrained:.3f}"
    )
    return result, trained, untrained


@pytest.mark.slow
def test_small_table6_preset_lowers_validation_loss(dev_features, tmp_path):
    """The paper's network (small preset) learns on its training objective (with the default
    pair sampling and L2 inputs its validation loss falls about 4x within 6 epochs). It does NOT
    beat the untrained baseline on test Recall@20 on this 640-movie train split (printed, see
    docs/REPRODUCTION.md item 7), so that is reported, not asserted."""
    result, _, _ = _train(dev_features, tmp_path, "conv", epochs=6, patience=6)
    assert result.best_val_loss < result.first_val_loss


@pytest.mark.slow
def test_trained_fusion_beats_the_untrained_baseline(dev_features, tmp_path):
    """concat -> FC 256 trained with the improved loss beats the untrained projection."""
    result, trained, untrained = _train(dev_features, tmp_path, "linear", epochs=40, patience=10)
    assert result.best_val_loss < result.first_val_loss
    assert trained > untrained


@pytest.mark.slow
def test_label_free_projection_beats_the_service_default(dev_features):
    """PCA-256 fitted on the training movies' features (no labels) ranks the test movies better
    than the fixed random projection the service uses without a checkpoint (docs/REPRODUCTION.md
    item 9: 29.6 % against 25.4 % Recall@20)."""
    from model.evaluate import FALLBACK_METHOD, PCA_METHOD

    ds, path = dev_features
    results = evaluate_methods(FeatureCache.load(path), ds)
    pca, fallback = (results[m]["thesis_recall@20"] for m in (PCA_METHOD, FALLBACK_METHOD))
    print(f"\n[projection] test Recall@20: PCA {pca:.3f}, service default {fallback:.3f}")
    assert pca > fallback
