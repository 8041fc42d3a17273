import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.config import ImageEncoderConfig, TextEncoderConfig
from model.image import ImageEncoder
from model.text import KoBertTokenizer, TextEncoder

PLOTS = [
    "a detective hunts a killer in a dark city",
    "a family dog saves the school",
    "love and war in space",
    "",
]


def test_tiny_text_encoder_from_local_dir(tiny_models):
    enc = TextEncoder(TextEncoderConfig(name=tiny_models["text_model"], batch_size=2), "cpu")
    out = enc.encode(PLOTS)
    assert out.shape == (4, 32) and out.dtype == np.float32 and np.isfinite(out).all()
    assert enc.pooling == "mean"
    cls = TextEncoder(TextEncoderConfig(name=tiny_models["text_model"], pooling="cls"), "cpu")
    assert not np.allclose(cls.encode(PLOTS[:1]), out[:1])
    # batching does not change results
    np.testing.assert_allclose(enc.encode(PLOTS, batch_size=4), out, atol=1e-5)


def test_long_text_is_truncated_to_the_model_limit(tiny_models):
    enc = TextEncoder(TextEncoderConfig(name=tiny_models["text_model"], max_length=512), "cpu")
    assert enc.max_length == 128  # the tiny model has 128 positions
    assert enc.encode(["the city " * 2000]).shape == (1, 32)


@pytest.fixture(scope="module")
def tiny_kobert(tmp_path_factory, tiny_models):
    import sentencepiece as spm
    from transformers import BertConfig, BertModel

    d = tmp_path_factory.mktemp("tiny-kobert")
    corpus = [
        "형사가 어두운 도시에서 살인자를 쫓는다",
        "가족과 개가 학교를 구한다",
        "우주에서 사랑과 전쟁",
        "a detective in the city",
    ] * 50
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_prefix=str(d / "spiece"),
        vocab_size=46,
        hard_vocab_limit=False,
        user_defined_symbols=["[PAD]", "[CLS]", "[SEP]", "[MASK]"],
        unk_piece="[UNK]",
        pad_id=-1,
        bos_id=-1,
        eos_id=-1,
        character_coverage=1.0,
    )
    torch.manual_seed(0)
    BertModel(
        BertConfig(
            vocab_size=64,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
    ).save_pretrained(d)
    return d


def test_kobert_tokenizer_builds_bert_style_inputs(tiny_kobert):
    tok = KoBertTokenizer.from_pretrained(str(tiny_kobert))
    batch = tok(["형사가 도시에서 살인자를 쫓는다", "가족"], max_length=6)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape[1] <= 6
    assert (ids[:, 0] == tok.cls_id).all()
    last = mask.sum(1) - 1
    assert all(ids[i, last[i]] == tok.sep_id for i in range(2))
    assert (ids[mask == 0] == tok.pad_id).all()


def test_kobert_named_model_uses_cls_pooling_and_its_tokenizer(tiny_kobert):
    enc = TextEncoder(TextEncoderConfig(name=str(tiny_kobert)), "cpu")
    assert isinstance(enc.tokenizer, KoBertTokenizer) and enc.pooling == "cls"
    assert enc.encode(["형사가 살인자를 쫓는다"]).shape == (1, 32)


def _images(n):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)) for _ in range(n)]


def test_tiny_image_encoder_loads_local_weights_and_mean_pools(tiny_models):
    cfg = ImageEncoderConfig(
        name="test_efficientnet", weights=tiny_models["image_weights"], batch_size=2
    )
    enc = ImageEncoder(cfg, "cpu")
    assert enc.dim == 256 and enc.input_size == 160
    ims = _images(3)
    feats = enc.encode(ims)
    assert feats.shape == (3, 256) and feats.dtype == np.float32
    pooled = enc.encode_movies([ims[:2], ims[2:]])
    np.testing.assert_allclose(pooled[0], feats[:2].mean(0), atol=1e-5)
    # the weights file is really loaded: a second random-init model disagrees, a reload agrees
    torch.manual_seed(123)
    other = ImageEncoder(ImageEncoderConfig(name="test_efficientnet", pretrained=False), "cpu")
    assert not np.allclose(other.encode(ims[:1]), feats[:1])
    np.testing.assert_allclose(ImageEncoder(cfg, "cpu").encode(ims[:1]), feats[:1], atol=1e-5)


def test_image_size_override_and_preprocessing_from_model(tiny_models):
    cfg = ImageEncoderConfig(
        name="test_efficientnet", weights=tiny_models["image_weights"], image_size=96
    )
    enc = ImageEncoder(cfg, "cpu")
    assert enc.prepare(_images(1)).shape == (1, 3, 96, 96)
    assert tuple(enc.data_config["mean"]) == pytest.approx((0.485, 0.456, 0.406))


def test_split_preprocessing_equals_timms_eval_transform(tiny_models):
    """prepare (uint8, request thread) + normalize (device) must be timm's transform exactly."""
    enc = ImageEncoder(ImageEncoderConfig(name="test_efficientnet", pretrained=False), "cpu")
    ims = _images(2)
    pixels = enc.prepare(ims)
    assert pixels.dtype == torch.uint8 and pixels.shape == (2, 3, 160, 160)
    expected = torch.stack([enc.transform(im.convert("RGB")) for im in ims])  # timm's own
    torch.testing.assert_close(enc.normalize(pixels), expected, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(enc.encode_tensors(pixels), enc.encode_tensors(expected), atol=1e-5)
    np.testing.assert_allclose(
        enc.encode_prepared([pixels[:1], pixels[1:]]), enc.encode_movies([ims[:1], ims[1:]])
    )


def test_prepare_from_decodes_in_the_pool_and_raises_the_first_failure_in_order():
    """Uploads decode and resize in pool threads: the same pixels as decoding first, and a bad
    upload fails the movie with its own error, the first bad one in upload order."""
    enc = ImageEncoder(ImageEncoderConfig(name="test_efficientnet", pretrained=False), "cpu")
    ims = _images(3)
    decoded_in: set[str] = set()

    def decode(i: int) -> Image.Image:
        decoded_in.add(threading.current_thread().name)
        if i < 0:
            raise ValueError(f"upload {i} is broken")
        return ims[i]

    expected = torch.stack([enc.transform(im.convert("RGB")) for im in ims])  # timm's own
    pixels = enc.prepare_from([0, 1, 2], decode)
    torch.testing.assert_close(enc.normalize(pixels), expected, atol=1e-6, rtol=1e-6)
    assert all(name.startswith("resize") for name in decoded_in)  # not the calling thread
    one = enc.prepare_from([2], decode)
    torch.testing.assert_close(enc.normalize(one), expected[2:], atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="upload -1 is broken"):
        enc.prepare_from([0, -1, 1, -2], decode)
    with pytest.raises(ValueError, match="at least one image"):
        enc.prepare_from([], decode)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts Linux threads")
def test_prepare_starts_no_openmp_team_in_the_calling_thread():
    """Request threads call prepare. A torch parallel region there gives each of them its own
    OpenMP team, and with those teams alive the embedding worker's encoders got 1.4 of 2 CPU
    cores instead of 2 (docs/PERFORMANCE.md section 3)."""
    if torch.get_num_threads() < 2:
        pytest.skip("one intra-op thread: OpenMP starts no team anyway")
    enc = ImageEncoder(ImageEncoderConfig(name="test_efficientnet", pretrained=False), "cpu")
    images = _images(3)
    enc.prepare(images)  # the resize pool's threads exist from here on
    enc.prepare(images)
    prepared, release = threading.Event(), threading.Event()

    def request_thread() -> None:
        enc.prepare(images)
        prepared.set()
        release.wait(30)

    before = len(os.listdir("/proc/self/task"))
    thread = threading.Thread(target=request_thread)
    thread.start()
    try:
        assert prepared.wait(30)
        during = len(os.listdir("/proc/self/task"))
    finally:
        release.set()
        thread.join()
    assert during == before + 1  # the request thread itself, no OpenMP workers of its own


def test_movie_without_images_is_an_error(tiny_models):
    enc = ImageEncoder(ImageEncoderConfig(name="test_efficientnet", pretrained=False), "cpu")
    with pytest.raises(ValueError):
        enc.encode_movies([[]])


@pytest.mark.slow
def test_real_minilm_ranks_paraphrases_together(shared_dir):
    enc = TextEncoder(TextEncoderConfig(name=str(shared_dir / "models/all-MiniLM-L6-v2")), "cpu")
    assert enc.dim == 384 and enc.pooling == "mean"
    v = enc.encode(
        [
            "A young wizard attends a school of magic.",
            "A boy discovers he is a wizard and goes to a magic academy.",
            "Two detectives investigate a series of brutal murders.",
        ]
    )
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


@pytest.mark.slow
def test_real_efficientnet_lite0_from_local_weights(shared_dir):
    d = shared_dir / "models/tf_efficientnet_lite0"
    enc = ImageEncoder(
        ImageEncoderConfig(name="tf_efficientnet_lite0", weights=str(d / "model.safetensors")),
        "cpu",
    )
    assert enc.dim == 1280 and enc.input_size == 224
    assert tuple(enc.data_config["mean"]) == pytest.approx(
        (0.5, 0.5, 0.5)
    )  # from the model, not ImageNet's
    posters = sorted((shared_dir / "data/tmdb-similar/images").iterdir())[:3]
    ims = [Image.open(p / "poster.jpg").convert("RGB") for p in posters]
    feats = enc.encode(ims)
    assert feats.shape == (3, 1280) and np.isfinite(feats).all() and feats.std() > 0.01
