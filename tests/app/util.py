"""Posting movies in tests."""

from __future__ import annotations

from tests.helpers import image_bytes


def post_movie(
    client,
    title="Night of the Ghost",
    plot="a ghost haunts a dark house at night",
    genres=("Horror",),
    n_images=2,
    seed=1,
    external_id=None,
    year=None,
    fmt="JPEG",
):
    files = [
        ("images", (f"still{i}.jpg", image_bytes(fmt, seed=seed + i), "image/jpeg"))
        for i in range(n_images)
    ]
    data: dict = {"title": title, "plot": plot}
    if genres:
        data["genres"] = list(genres)
    if external_id is not None:
        data["external_id"] = external_id
    if year is not None:
        data["year"] = str(year)
    return client.post("/movies", data=data, files=files)
