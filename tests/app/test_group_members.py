"""Genre-group ids for filtered answers come from memory until a write, never from a read that
raced one, and a filtered answer follows every change of a movie's groups (SQLite and
PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest

from app.movies.card_cache import CardCache
from app.movies.group_members import GroupMembers
from tests.app.util import CATALOG, post_movie


def test_ids_are_read_once_per_write_generation():
    cards = CardCache(capacity=10)
    members = GroupMembers(cards)
    reads: list[int] = []

    def read(ids):
        def counted():
            reads.append(1)
            return ids

        return counted

    np.testing.assert_array_equal(members.ids(3, read({5, 1, 9})), [1, 5, 9])
    np.testing.assert_array_equal(members.ids(3, read({0})), [1, 5, 9])  # from memory
    assert len(reads) == 1
    cards.invalidate([5])  # a write committed
    np.testing.assert_array_equal(members.ids(3, read({1, 9})), [1, 9])
    assert len(reads) == 2


def test_a_read_that_raced_a_write_is_not_kept():
    cards = CardCache(capacity=10)
    members = GroupMembers(cards)

    def racing_read():
        cards.invalidate([1])  # a write commits while the group is being read
        return {1, 2}

    members.ids(4, racing_read)
    np.testing.assert_array_equal(members.ids(4, lambda: {2}), [2])  # read again


def groups_of(client, movie_id: int) -> list[int]:
    return [g["id"] for g in client.get(f"/movies/{movie_id}").json()["genre_groups"]]


def similar_ids(client, movie_id: int, group: int) -> set[int]:
    r = client.get(f"/movies/{movie_id}/similar", params={"genre_group": group, "k": 10})
    assert r.status_code == 200, r.text
    return {x["movie"]["id"] for x in r.json()["results"]}


@pytest.fixture(params=["flat", "hnsw"])
def indexed(make_client, database_url, request):
    """(client, movie ids) over an index of each kind."""
    client = make_client(database_url, index_kind=request.param)
    ids = [
        post_movie(client, title=t, plot=p, genres=g, seed=s).json()["id"] for t, p, g, s in CATALOG
    ]
    return client, ids


def test_a_filtered_answer_follows_every_change_of_groups(indexed):
    client, catalog = indexed
    horror = similar_ids(client, catalog[0], 6)
    assert horror and all(6 in groups_of(client, i) for i in horror)
    assert horror == similar_ids(client, catalog[0], 6)  # the second from memory
    joined = next(i for i in catalog[1:] if i not in horror)
    client.patch(f"/movies/{joined}", json={"genres": ["Horror"]})
    assert similar_ids(client, catalog[0], 6) == horror | {joined}
    client.patch(f"/movies/{joined}", json={"genres": ["Comedy"]})
    assert similar_ids(client, catalog[0], 6) == horror
    new = post_movie(client, title="New fright", genres=["Horror"], seed=31).json()["id"]
    assert new in similar_ids(client, catalog[0], 6)
    client.delete(f"/movies/{new}")
    assert similar_ids(client, catalog[0], 6) == horror
