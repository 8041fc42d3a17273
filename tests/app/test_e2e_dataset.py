"""200 real movies through POST /movies with the real offline encoders and the fallback fusion:
a movie's TMDB-similar movies must be over-represented in its top 20, compared with chance."""

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from model.data import load_dataset

N_MOVIES = 200


@pytest.mark.slow
def test_tmdb_similar_movies_are_over_represented(shared_dir, tmp_path):
    ds = load_dataset(shared_dir / "data" / "tmdb-similar")
    movies = ds.movies[:N_MOVIES]
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        device="cpu",
        text_model=str(shared_dir / "models" / "all-MiniLM-L6-v2"),
        image_model="tf_efficientnet_lite0",
        image_weights=str(shared_dir / "models" / "tf_efficientnet_lite0" / "model.safetensors"),
    )
    with TestClient(create_app(settings)) as client:
        service_id = {}
        for m in movies:
            files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in m.image_paths]
            r = client.post(
                "/movies",
                files=files,
                data={
                    "title": m.title,
                    "plot": m.plot or m.title,
                    "genres": m.genres,
                    "external_id": str(m.id),
                    **({"year": str(m.year)} if m.year else {}),
                },
            )
            assert r.status_code == 201, r.text
            service_id[m.id] = r.json()["id"]
        back = {v: k for k, v in service_id.items()}
        inside = set(service_id)
        hits, slots, chance, queries = 0, 0, 0.0, 0
        for m in movies:
            relevant = ds.related.get(m.id, set()) & inside
            if not relevant:
                continue
            r = client.get(f"/movies/{service_id[m.id]}/similar", params={"k": 20})
            assert r.status_code == 200
            top = [back[x["movie"]["id"]] for x in r.json()["results"]]
            assert len(top) == 20 and m.id not in top
            hits += len(set(top) & relevant)
            slots += 20
            chance += 20 * len(relevant) / (len(movies) - 1)
            queries += 1
        assert client.get("/ready").json()["index_consistent"]
    ratio = hits / chance
    print(
        f"\n[e2e] {queries} queries with relevant movies among {len(movies)}: {hits} relevant in "
        f"top-20 vs {chance:.1f} expected by chance -> {ratio:.2f}x over-represented "
        f"(precision@20 {hits / slots:.3f})"
    )
    assert queries >= 50
    assert ratio > 1.5, f"similar movies only {ratio:.2f}x over-represented"
