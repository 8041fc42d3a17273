"""CUDA-graph replay of the image encoder: bucket arithmetic here, the replay itself on a GPU."""

import numpy as np
import pytest
import torch
from PIL import Image

from model.config import ImageEncoderConfig
from model.cuda_graphs import GraphedForward, bucket_for, graph_buckets
from model.image import ImageEncoder


def test_buckets_step_by_at_most_one_and_a_half():
    assert graph_buckets(1) == [1]
    assert graph_buckets(32) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
    assert graph_buckets(20) == [1, 2, 3, 4, 6, 8, 12, 16, 20]
    for max_batch in range(1, 70):
        sizes = graph_buckets(max_batch)
        assert sizes[-1] == max_batch and sizes == sorted(set(sizes))
        for n in range(1, max_batch + 1):
            size = bucket_for(n, sizes)
            assert n <= size <= max(1.5 * n, n + 1)  # padding is at most half the batch
    with pytest.raises(ValueError):
        graph_buckets(0)
    with pytest.raises(ValueError, match="larger than the largest graph"):
        bucket_for(33, graph_buckets(32))


def test_graphs_are_cuda_only(tiny_models):
    with pytest.raises(ValueError, match="CUDA"):
        GraphedForward(
            lambda x: x,
            sample_shape=(3,),
            dtype=torch.float32,
            device=torch.device("cpu"),
            max_batch=4,
        )
    cfg = ImageEncoderConfig(name="test_efficientnet", pretrained=False, cuda_graphs=True)
    enc = ImageEncoder(cfg, "cpu")
    assert enc.graphed is None  # the CPU path stays eager whatever the setting


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_graph_replay_matches_the_eager_forward(tiny_models):
    """Every batch size, padded into its bucket, gives the eager forward's features."""
    cfg = ImageEncoderConfig(
        name="test_efficientnet", pretrained=False, batch_size=6, cuda_graphs=True
    )
    torch.manual_seed(0)
    graphed = ImageEncoder(cfg, "cuda")
    eager = ImageEncoder(ImageEncoderConfig(**{**cfg.__dict__, "cuda_graphs": False}), "cuda")
    eager.model.load_state_dict(graphed.model.state_dict())
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)) for _ in range(7)]
    pixels = graphed.prepare(images)
    for n in (1, 3, 5, 6, 7):  # 7 > the largest graph: chunks of 6 + 1
        got = graphed.encode_prepared([pixels[:n]], batch_size=6)
        want = eager.encode_prepared([pixels[:n]], batch_size=6)
        np.testing.assert_allclose(got, want, atol=2e-2, rtol=2e-2)  # bf16 autocast both ways
    assert graphed.graphed is not None and not graphed.graphed.failed
    assert sorted(graphed.graphed._graphs) == [1, 3, 6]
