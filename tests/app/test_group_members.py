"""Genre-group ids for filtered answers come from memory, patched by each reported write and read
again after any other, never from a read that raced a write, and a filtered answer follows every
change of a movie's groups (SQLite and PostgreSQL)."""

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


def fails():
    raise AssertionError("read from the database")


def test_a_reported_write_updates_the_cached_groups_instead_of_dropping_them():
    cards = CardCache(capacity=10)
    members = GroupMembers(cards)
    members.ids(3, lambda: [9, 1, 5])
    members.ids(4, lambda: [5])
    members.moved(7, [3], cards.invalidate([7]))  # a POST into group 3
    np.testing.assert_array_equal(members.ids(3, fails), [1, 5, 7, 9])
    np.testing.assert_array_equal(members.ids(4, fails), [5])
    members.moved(5, [4], cards.invalidate([5]))  # a PATCH out of group 3, staying in 4
    np.testing.assert_array_equal(members.ids(3, fails), [1, 7, 9])
    np.testing.assert_array_equal(members.ids(4, fails), [5])
    members.moved(1, [], cards.invalidate([1]))  # a DELETE
    np.testing.assert_array_equal(members.ids(3, fails), [7, 9])
    assert members.reads == 2


def test_groups_a_write_did_not_report_are_read_again():
    cards = CardCache(capacity=10)
    members = GroupMembers(cards)
    members.ids(3, lambda: [1, 2])
    cards.clear()  # a bulk import: nothing reported
    members.moved(2, [], cards.invalidate([2]))  # the next write cannot patch a stale group
    np.testing.assert_array_equal(members.ids(3, lambda: [1, 8]), [1, 8])
    members.ids(3, fails)
    generation = cards.invalidate([8])
    cards.invalidate([9])  # another write came between: its change was not reported
    members.moved(8, [], generation)
    np.testing.assert_array_equal(members.ids(3, lambda: [1]), [1])
    assert members.reads == 3


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
    members = client.app.state.movierec.groups
    horror = similar_ids(client, catalog[0], 6)
    assert horror and all(6 in groups_of(client, i) for i in horror)
    assert horror == similar_ids(client, catalog[0], 6)  # the second from memory
    reads = members.reads
    joined = next(i for i in catalog[1:] if i not in horror)
    client.patch(f"/movies/{joined}", json={"genres": ["Horror"]})
    assert similar_ids(client, catalog[0], 6) == horror | {joined}
    client.patch(f"/movies/{joined}", json={"genres": ["Comedy"]})
    assert similar_ids(client, catalog[0], 6) == horror
    new = post_movie(client, title="New fright", genres=["Horror"], seed=31).json()["id"]
    assert new in similar_ids(client, catalog[0], 6)
    client.delete(f"/movies/{new}")
    assert similar_ids(client, catalog[0], 6) == horror
    assert members.reads == reads  # each write's change applied in memory, none read again
