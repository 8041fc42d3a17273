import pytest
import torch

from model.config import FusionConfig, fusion_preset
from model.fusion import ConcatLinear, RandomProjection, TextImageNet


def test_paper_preset_has_the_thesis_parameter_count():
    net = TextImageNet(fusion_preset("paper", text_dim=768, image_dim=2560))
    assert net.config.in_dim == 3328
    assert TextImageNet.output_length(net.config) == 59
    assert net.flat_dim == 120_832
    assert sum(p.numel() for p in net.parameters()) == 116_924_544


def test_small_preset_outputs_unit_vectors_and_is_much_smaller():
    cfg = fusion_preset("small", text_dim=384, image_dim=1280)
    net = TextImageNet(cfg).eval()
    out = net(torch.randn(5, 384), torch.randn(5, 1280))
    assert out.shape == (5, 256)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    assert sum(p.numel() for p in net.parameters()) < 2_000_000


def test_config_round_trips_through_json_dict():
    cfg = fusion_preset("small", text_dim=32, image_dim=256)
    assert FusionConfig.from_dict(cfg.to_dict()) == cfg


def test_too_short_input_is_a_clear_error():
    with pytest.raises(ValueError, match="too short"):
        TextImageNet(FusionConfig(text_dim=8, image_dim=8))


def test_same_padding_accepts_short_inputs():
    net = TextImageNet(
        FusionConfig(
            text_dim=32,
            image_dim=64,
            padding="same",
            kernel_sizes=(3, 3, 3, 3, 3),
            filters=(4, 4, 4, 4, 4),
        )
    )
    assert net(torch.randn(2, 32), torch.randn(2, 64)).shape == (2, 256)


def test_random_projection_is_deterministic_and_preserves_neighbours():
    a, b = RandomProjection(32, 64, seed=0), RandomProjection(32, 64, seed=0)
    text, image = torch.randn(50, 32), torch.randn(50, 64)
    torch.testing.assert_close(a(text, image), b(text, image))
    # the nearest neighbour in concat space stays among the top-3 after projection for most rows
    x = torch.cat(
        [torch.nn.functional.normalize(text, dim=1), torch.nn.functional.normalize(image, dim=1)],
        dim=1,
    )
    x = torch.nn.functional.normalize(x, dim=1)
    sims, proj = x @ x.T, a(text, image) @ a(text, image).T
    sims.fill_diagonal_(-2)
    proj.fill_diagonal_(-2)
    nn_true = sims.argmax(1)
    top3 = proj.topk(3, dim=1).indices
    kept = (top3 == nn_true[:, None]).any(1).float().mean()
    assert kept > 0.6


def test_concat_linear_shape():
    out = ConcatLinear(4, 6, 8)(torch.randn(3, 4), torch.randn(3, 6))
    assert out.shape == (3, 8)


def test_l2_input_norm_ignores_feature_scale():
    """l2: each modality is unit-normalised first, so rescaling a modality changes nothing."""
    from model.embedder import EmbedderSpec, MovieEmbedder

    torch.manual_seed(0)
    cfg = FusionConfig(text_dim=16, image_dim=48, kernel_sizes=(3,) * 5, filters=(4,) * 5)
    model = MovieEmbedder(EmbedderSpec(fusion=cfg, head="linear", input_norm="l2")).eval()
    text, image = torch.randn(3, 16), torch.rand(3, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(text, image), model(10 * text, 0.1 * image))
        assert not torch.allclose(model(text, image), model(text, image + 1.0))


def test_checkpoints_from_before_input_norm_still_load():
    from model.embedder import EmbedderSpec

    cfg = FusionConfig(text_dim=16, image_dim=48)
    old = {**EmbedderSpec(fusion=cfg).to_dict(), "standardize": False}
    old.pop("input_norm")
    assert EmbedderSpec.from_dict(old).input_norm == "none"
