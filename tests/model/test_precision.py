"""What the encoders compute in: bf16 on CUDA and on CPUs with bf16 in hardware, fp32 elsewhere or
when asked."""

import numpy as np
import pytest
import torch
from torch import nn

import model.device
from bench.common import relative_change
from model.config import ImageEncoderConfig, TextEncoderConfig
from model.device import autocast_context, encoder_dtype
from model.image import ImageEncoder
from model.text import TextEncoder
from tests.model.test_encoders import PLOTS, _images

CPU = torch.device("cpu")


def test_auto_is_bf16_on_cuda_and_bf16_cpus_and_fp32_elsewhere(monkeypatch):
    monkeypatch.setattr(model.device, "cpu_has_native_bf16", lambda: True)
    assert encoder_dtype(CPU) == torch.bfloat16
    assert encoder_dtype(CPU, "fp32") == torch.float32
    monkeypatch.setattr(model.device, "cpu_has_native_bf16", lambda: False)
    assert encoder_dtype(CPU) == torch.float32
    assert encoder_dtype(CPU, "bf16") == torch.bfloat16
    assert encoder_dtype(torch.device("cuda")) == torch.bfloat16
    assert encoder_dtype(torch.device("cuda"), "fp32") == torch.float32
    assert encoder_dtype(torch.device("mps")) == torch.float32


@pytest.mark.parametrize("probe", ["_is_amx_tile_supported", "_init_amx"])
def test_a_torch_without_an_amx_probe_counts_as_no_amx(monkeypatch, probe):
    monkeypatch.delattr(torch.cpu, probe, raising=False)
    assert model.device.cpu_has_amx() is False


def test_amx_the_kernel_refuses_counts_as_no_amx(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_init_amx", lambda: False)
    assert model.device.cpu_has_amx() is False
    monkeypatch.setattr(torch.cpu, "_init_amx", lambda: True)
    assert model.device.cpu_has_amx() is True


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "native"),
    [(True, False, True), (False, True, True), (True, True, True), (False, False, False)],
)
def test_bf16_in_hardware_is_amx_or_avx512_bf16(monkeypatch, amx, avx512_bf16, native):
    """AVX512-BF16 alone (AMD Zen 4) runs the dev encoders 1.56x faster in bf16; a CPU with
    neither emulates bf16 at 0.58x fp32's speed (docs/PERFORMANCE.md section 3)."""
    monkeypatch.setattr(model.device, "cpu_has_amx", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert model.device.cpu_has_native_bf16() is native


def test_a_torch_without_the_avx512_bf16_probe_counts_as_without(monkeypatch):
    monkeypatch.setattr(model.device, "cpu_has_amx", lambda: False)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert model.device.cpu_has_native_bf16() is False


def _matmul_weight_dtypes(module: nn.Module) -> set[torch.dtype]:
    return {
        m.weight.dtype for m in module.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)
    }


def _text(tiny_models, precision):
    config = TextEncoderConfig(name=tiny_models["text_model"], precision=precision)
    return TextEncoder(config, "cpu")


def _image(tiny_models, precision):
    config = ImageEncoderConfig(
        name="test_efficientnet", weights=tiny_models["image_weights"], precision=precision
    )
    return ImageEncoder(config, "cpu")


# tower: (its encoder for a precision, inputs, the largest relative change bf16 may make)
TOWERS = {"text": (_text, lambda: PLOTS, 0.05), "image": (_image, lambda: _images(3), 0.1)}


@pytest.mark.parametrize("tower", TOWERS)
def test_bf16_encoder_keeps_its_matmul_weights_in_bf16_and_equals_autocast(tiny_models, tower):
    build, inputs, largest_change = TOWERS[tower]
    fp32, bf16 = build(tiny_models, "fp32"), build(tiny_models, "bf16")
    assert fp32.compute_dtype == torch.float32
    assert _matmul_weight_dtypes(fp32.model) == {torch.float32}
    assert bf16.compute_dtype == torch.bfloat16
    assert _matmul_weight_dtypes(bf16.model) == {torch.bfloat16}
    reference = fp32.encode(inputs())
    got = bf16.encode(inputs())
    assert got.dtype == np.float32 and np.isfinite(got).all()
    # bf16 really ran, and stayed close to fp32
    assert not np.allclose(got, reference, rtol=0, atol=1e-6)
    assert relative_change(reference, got)["max"] < largest_change
    # the weights stored in bf16 give what autocast alone gives (it casts them the same way)
    fp32.compute_dtype = torch.bfloat16
    np.testing.assert_array_equal(fp32.encode(inputs()), got)


def test_bf16_text_encoder_keeps_its_embedding_lookups_in_fp32(tiny_models):
    embeddings = _text(tiny_models, "bf16").model.embeddings
    assert embeddings.word_embeddings.weight.dtype == torch.float32  # no matmul: nothing to gain


def test_fp32_runs_without_autocast():
    with autocast_context(CPU, torch.float32):
        assert not torch.is_autocast_enabled("cpu")
    with autocast_context(CPU, torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_feature_cache_records_the_precision_it_was_computed_in(tiny_models, precision, tmp_path):
    from model.data import load_dataset
    from model.features import compute_features
    from tests.model.dataset_fixture import write_dataset

    cache = compute_features(
        load_dataset(write_dataset(tmp_path, n=4)),
        text_model=tiny_models["text_model"],
        image_model="test_efficientnet",
        image_weights=tiny_models["image_weights"],
        device="cpu",
        precision=precision,
        progress=False,
    )
    assert cache.meta["text_precision"] == cache.meta["image_precision"] == precision
