"""The `movierec` command line end to end on a synthetic dataset with tiny encoders."""

import json
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from app.cli import build_parser, main
from tests.model.dataset_fixture import write_dataset


def cli(*args: object) -> int:
    """`movierec ARGS...` in process; paths and numbers are stringified."""
    return main([str(a) for a in args])


def features(dataset, out, text_model: str, tiny_models: dict[str, str]) -> int:
    """`movierec features` with the tiny image tower."""
    return cli(
        "features",
        dataset,
        "--out",
        out,
        "--text-model",
        text_model,
        "--image-model",
        "test_efficientnet",
        "--image-weights",
        tiny_models["image_weights"],
        "--device",
        "cpu",
    )


def train_args(dataset, feats, out, epochs: int, batch: int = 8) -> list[object]:
    """`train` arguments for a small linear-head run on CPU."""
    return [
        "train", dataset, "--features", feats, "--out", out, "--head", "linear",
        "--batch-size", batch, "--epochs", epochs, "--device", "cpu",
    ]  # fmt: skip


def evaluate(dataset, feats, out, checkpoint: str) -> int:
    return cli("evaluate", dataset, "--features", feats, "--out", out, "--checkpoint", checkpoint)


COMMANDS = [
    "serve",
    "migrate",
    "import",
    "reindex",
    "api-key",
    "features",
    "train",
    "fit-projection",
    "evaluate",
    "plot",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, "--help"])
    assert exc.value.code == 0
    assert "usage: movierec " + command in capsys.readouterr().out


def test_fit_projection_refuses_a_catalogue_smaller_than_its_dimensions(pipeline, capsys):
    out = pipeline["root"] / "pca"
    code = cli("fit-projection", pipeline["ds"], "--features", pipeline["features"], "--out", out)
    assert code == 2 and not out.exists()
    assert "needs more than 256 movies, got 40" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "features" in out.stdout


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("pipeline")
    ds = write_dataset(root / "ds", n=40)
    feats = root / "features.safetensors"
    assert features(ds, feats, tiny_models["text_model"], tiny_models) == 0
    ckpt = root / "linear"
    assert cli(*train_args(ds, feats, ckpt, epochs=3)) == 0
    return {"root": root, "ds": ds, "features": feats, "ckpt": ckpt}


def test_features_train_evaluate_plot(pipeline, capsys):
    from model.features import FeatureCache

    cache = FeatureCache.load(pipeline["features"])
    assert cache.text.shape == (40, 32) and cache.image.shape == (40, 256)
    assert cache.meta["image_model"] == "test_efficientnet"
    config = json.loads((pipeline["ckpt"] / "config.json").read_text())
    assert config["spec"]["head"] == "linear" and config["train"]["loss"] == "improved"
    assert config["data"]["movies"] == 40 and "best_val_loss" in config["result"]
    log = [
        json.loads(x)
        for x in pipeline["ckpt"].with_name("linear.log.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in log] == [0, 1, 2, 3] and "val_thesis_recall@20" in log[1]

    out = pipeline["root"] / "report"
    assert evaluate(pipeline["ds"], pipeline["features"], out, f"mine={pipeline['ckpt']}") == 0
    results = json.loads(out.with_suffix(".json").read_text())
    assert {
        "mine",
        "K-NN on 2-D PCA",
        "untrained: concat -> random FC 256",
        "cosine on concat features (training-free)",
        "service default without a checkpoint: fixed random projection to 256",
    } == set(results)  # no PCA row: 26 training movies cannot fit 256 components
    assert "| mine |" in out.with_suffix(".md").read_text()
    png = pipeline["root"] / "pca.png"
    assert (
        cli(
            "plot",
            pipeline["ds"],
            "--features",
            pipeline["features"],
            "--checkpoint",
            pipeline["ckpt"],
            "--out",
            png,
            "--all",
        )
        == 0
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = evaluate(pipeline["ds"], pipeline["features"], pipeline["root"] / "x", "no-equals-sign")
    assert bad == 2


def test_time_budget_stops_training_and_keeps_the_best_epoch(pipeline):
    out = pipeline["root"] / "budget"
    args = train_args(pipeline["ds"], pipeline["features"], out, epochs=50)
    assert cli(*args, "--max-minutes", 0, "--input-norm", "l2") == 0
    config = json.loads((out / "config.json").read_text())
    assert config["result"]["stopped_by"] == "time budget"
    assert config["result"]["epochs_run"] == 1 and config["train"]["max_minutes"] == 0
    assert config["spec"]["input_norm"] == "l2"


def test_lstm_text_tower_trains_jointly(pipeline, tiny_models):
    feats = pipeline["root"] / "lstm.safetensors"
    assert features(pipeline["ds"], feats, "lstm", tiny_models) == 0
    ckpt = pipeline["root"] / "lstm"
    assert cli(*train_args(pipeline["ds"], feats, ckpt, epochs=2)) == 0
    config = json.loads((ckpt / "config.json").read_text())
    assert config["spec"]["text_tower"] == "lstm" and config["spec"]["vocab_size"] > 10
    out = pipeline["root"] / "lstm-report"
    assert evaluate(pipeline["ds"], feats, out, f"lstm={ckpt}") == 0
    assert set(json.loads(out.with_suffix(".json").read_text())) == {"lstm"}


def test_import_then_reindex_with_a_checkpoint(pipeline, tiny_models, monkeypatch, tmp_path):
    from app.config import Settings
    from app.main import create_app

    monkeypatch.chdir(tmp_path)  # no stray .env
    for key, value in {
        "TEXT_MODEL": tiny_models["text_model"],
        "IMAGE_MODEL": "test_efficientnet",
        "IMAGE_WEIGHTS": tiny_models["image_weights"],
        "DEVICE": "cpu",
        "DATA_DIR": str(tmp_path / "svc"),
    }.items():
        monkeypatch.setenv(f"MOVIEREC_{key}", value)
    assert cli("import", pipeline["ds"], "--batch-size", 16, "--limit", 30) == 0
    assert cli("import", pipeline["ds"], "--batch-size", 16) == 0  # resumes: 30 skipped
    with TestClient(create_app(Settings())) as client:
        ready = client.get("/ready").json()
        assert ready["indexed"] == 40 and ready["fallback_model"] and ready["index_consistent"]
        before = client.get("/movies/1/similar", params={"k": 5}).json()
    monkeypatch.setenv("MOVIEREC_FUSION_CHECKPOINT", str(pipeline["ckpt"]))
    assert cli("reindex") == 0
    with TestClient(create_app(Settings())) as client:
        ready = client.get("/ready").json()
        assert ready["model_version"].startswith("fusion-") and ready["index_consistent"]
        assert ready["indexed"] == 40
        after = client.get("/movies/1/similar", params={"k": 5}).json()
        assert after["model_version"] == ready["model_version"]
        assert [r["score"] for r in after["results"]] != [r["score"] for r in before["results"]]


def test_training_under_torchrun_with_two_processes(pipeline, tmp_path):
    """DistributedDataParallel on CPU (gloo): two ranks train, rank 0 writes the checkpoint."""
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29533",
        "-m",
        "app.cli",
        *map(str, train_args(pipeline["ds"], pipeline["features"], out, epochs=2, batch=4)),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["result"]["epochs_run"] == 2


def test_word2vec_text_features(pipeline, tiny_models):
    """The thesis' Word2Vec encoder: the mean of pretrained word vectors (gensim text format)."""
    pytest.importorskip("gensim")
    import numpy as np

    from model.features import FeatureCache
    from model.seqtext import Word2VecEncoder

    vectors = pipeline["root"] / "vectors.txt"
    words = {
        "ghost": [1, 0, 0, 0],
        "dark": [0, 1, 0, 0],
        "comedy": [0, 0, 1, 0],
        "family": [0, 0, 0, 1],
    }
    vectors.write_text(
        f"{len(words)} 4\n" + "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in words.items())
    )
    enc = Word2VecEncoder(str(vectors))
    out = enc.encode(["A dark ghost!", "nothing known here"])
    np.testing.assert_allclose(out[0], [0.5, 0.5, 0, 0])
    np.testing.assert_allclose(out[1], [0, 0, 0, 0])
    feats = pipeline["root"] / "w2v.safetensors"
    assert features(pipeline["ds"], feats, f"word2vec:{vectors}", tiny_models) == 0
    cache = FeatureCache.load(feats)
    assert cache.text.shape == (40, 4) and cache.text.any(axis=1).all()
