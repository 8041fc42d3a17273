"""Posting movies in tests, and the small catalogue most API tests start from."""

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


CATALOG = [
    ("Night of the Ghost", "a ghost haunts a dark house at night", ["Horror"], 1),
    (
        "House of Screams",
        "a family moves into a dark house where a ghost lives",
        ["Horror", "Thriller"],
        2,
    ),
    (
        "Space War",
        "space ships fight an alien war far from earth",
        ["Science Fiction", "Action"],
        3,
    ),
    ("Laugh Club", "a comedy about friends who start a band", ["Comedy"], 4),
    ("유령의 집", "a ghost and a murder in an old house", ["공포(호러)"], 5),
    ("The Dog", "a young boy and his dog save the school", ["Family", "Animation"], 6),
]
