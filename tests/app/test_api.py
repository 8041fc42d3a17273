"""The API end to end on SQLite and PostgreSQL (tiny encoders, real FAISS, real databases)."""

import pytest
import torch

from app.search.embedder import Embedder
from model.device import encoder_dtype, precision_name
from tests.app.conftest import tiny_settings
from tests.app.util import post_movie


def test_create_read_and_list(client, catalog):
    r = client.get(f"/movies/{catalog[4]}")
    assert r.status_code == 200
    body = r.json()
    assert body["title"] == "유령의 집"
    assert [g["id"] for g in body["genre_groups"]] == [6]
    assert body["model_version"].startswith("fallback-random-projection")
    assert body["image_count"] == 2
    page = client.get("/movies", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 6 and [m["id"] for m in page["items"]] == catalog[1:3]
    horror = client.get("/movies", params={"genre_group": 6}).json()
    assert {m["id"] for m in horror["items"]} == {catalog[0], catalog[1], catalog[4]}


def test_same_external_id_replaces_the_movie(client, catalog):
    before = client.get(f"/movies/{catalog[0]}").json()
    r = post_movie(
        client,
        title="Night of the Ghost (director's cut)",
        plot="a longer cut",
        genres=["Comedy"],
        seed=9,
        external_id="ext-1",
    )
    assert r.status_code == 200
    after = r.json()
    assert after["id"] == before["id"] and after["title"].endswith("cut)")
    assert [g["id"] for g in after["genre_groups"]] == [9]
    assert client.get("/movies").json()["total"] == 6


def test_similar_movies_with_explanations(client, catalog):
    r = client.get(f"/movies/{catalog[0]}/similar", params={"k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["id"] == catalog[0]
    results = body["results"]
    assert len(results) == 3
    assert catalog[0] not in [x["movie"]["id"] for x in results]
    scores = [x["score"] for x in results]
    assert scores == sorted(scores, reverse=True)
    for x in results:
        e = x["explanation"]
        assert e["query_groups"] == ["Horror/Thriller/Mystery"]
        assert e["driver"] in ("plot", "images", "both")
        assert -1 <= e["text_similarity"] <= 1 and -1 <= e["image_similarity"] <= 1
        assert "plots" in e["reason"] and "stills" in e["reason"]
        if e["shared_groups"]:
            assert e["reason"].startswith("Both Horror/Thriller/Mystery")


def test_similar_exclude_and_genre_filter(client, catalog):
    all5 = [x["movie"]["id"] for x in client.get(f"/movies/{catalog[0]}/similar").json()["results"]]
    assert sorted(all5) == sorted(catalog[1:])
    r = client.get(f"/movies/{catalog[0]}/similar", params={"exclude": [catalog[1], catalog[2]]})
    ids = [x["movie"]["id"] for x in r.json()["results"]]
    assert catalog[1] not in ids and catalog[2] not in ids and len(ids) == 3
    r = client.get(f"/movies/{catalog[0]}/similar", params={"genre_group": 6})
    assert {x["movie"]["id"] for x in r.json()["results"]} == {catalog[1], catalog[4]}


def test_patch_changes_metadata_not_the_vector(client, catalog):
    before = client.get(f"/movies/{catalog[3]}/similar", params={"k": 5}).json()["results"]
    r = client.patch(
        f"/movies/{catalog[3]}", json={"title": "Laugh Club 2", "genres": ["Drama"], "year": 2001}
    )
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "Laugh Club 2" and r.json()["year"] == 2001
    assert [g["id"] for g in r.json()["genre_groups"]] == [1]
    after = client.get(f"/movies/{catalog[3]}/similar", params={"k": 5}).json()["results"]
    assert [(x["movie"]["id"], x["score"]) for x in before] == [
        (x["movie"]["id"], x["score"]) for x in after
    ]


def test_delete_is_gone_from_results_at_once(client, catalog):
    assert client.delete(f"/movies/{catalog[1]}").status_code == 204
    assert client.get(f"/movies/{catalog[1]}").status_code == 404
    for movie_id in (catalog[0], catalog[2]):
        ids = [
            x["movie"]["id"] for x in client.get(f"/movies/{movie_id}/similar").json()["results"]
        ]
        assert catalog[1] not in ids
    assert client.delete(f"/movies/{catalog[1]}").json()["error"] == "MovieNotFound"
    # a new movie never reuses a deleted id
    r = post_movie(client, title="New", plot="a new film", seed=40)
    assert r.json()["id"] > max(catalog)


def test_movie_without_genres_gets_an_inferred_group(client):
    for i in range(4):
        assert post_movie(client, title=f"H{i}", genres=["Horror"], seed=1).status_code == 201
        assert (
            post_movie(
                client, title=f"C{i}", plot="friends laugh in a band", genres=["Comedy"], seed=30
            ).status_code
            == 201
        )
    r = post_movie(
        client, title="Unknown", plot="a ghost haunts a dark house at night", genres=None, seed=1
    )
    groups = r.json()["genre_groups"]
    assert groups and groups[0]["id"] == 6 and groups[0]["inferred"] is True
    assert 0 < groups[0]["confidence"] <= 1


def test_genre_groups_health_and_ready(client, catalog):
    groups = client.get("/genre-groups").json()
    assert len(groups) == 10
    horror = next(g for g in groups if g["id"] == 6)
    assert horror["size"] == 3 and 0 < horror["tightness"] <= 1
    assert next(g for g in groups if g["id"] == 10)["tightness"] is None
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["index_consistent"] and ready["indexed"] == 6
    assert ready["fallback_model"] is True
    assert ready["device"] == "cpu"
    assert ready["encoder_precision"] == precision_name(encoder_dtype(torch.device("cpu")))
    client.app.state.movierec.index.remove([catalog[0]])  # the index lost a movie
    r = client.get("/ready")
    assert r.status_code == 503 and not r.json()["index_consistent"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_encoder_precision_setting_reaches_both_encoders(tiny_models, tmp_path, precision):
    settings = tiny_settings(tiny_models, tmp_path, encoder_precision=precision)
    embedder = Embedder.from_settings(settings)
    dtypes = {embedder.text_encoder.compute_dtype, embedder.image_encoder.compute_dtype}
    assert dtypes == {encoder_dtype(torch.device("cpu"), precision)}
    assert embedder.precision == precision


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="one torch thread: never a spare")
@pytest.mark.parametrize("spare", [True, False])
def test_spare_embed_worker_setting_reaches_the_batcher(make_client, spare):
    batcher = make_client(spare_embed_worker=spare).app.state.movierec.batcher
    assert (batcher._spare is not None) is spare


def test_openapi_docs_declare_error_bodies(client):
    spec = client.get("/openapi.json").json()
    assert "ErrorBody" in spec["components"]["schemas"]
    assert "404" in spec["paths"]["/movies/{movie_id}/similar"]["get"]["responses"]
    assert client.get("/docs").status_code == 200


def test_a_slow_write_logs_where_its_time_went(make_client, caplog):
    client = make_client(slow_write_seconds=1e-6)  # every write counts as slow
    with caplog.at_level("WARNING", logger="movierec.service"):
        assert post_movie(client).status_code == 201
    (line,) = [r.getMessage() for r in caplog.records if "slow write" in r.getMessage()]
    for stage in ("decode + resize", "embed (queue + encoders)", "commit", "centroids + index"):
        assert f"{stage} " in line
