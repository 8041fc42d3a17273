import numpy as np
import pytest

from model.data import (
    TripletSampler,
    load_dataset,
    relevance,
    restrict,
    split_ids,
    undirected,
)
from model.genres import GENRE_GROUPS, GenreMapper
from tests.model.dataset_fixture import write_dataset


def test_ten_groups_and_both_languages_map():
    m = GenreMapper()
    assert len(GENRE_GROUPS) == 10
    assert m.groups_of(["Horror", "Thriller"]) == [6]
    assert m.groups_of(["공포(호러)", "스릴러"]) == [6]
    assert m.groups_of(["멜로/로맨스", "Science Fiction", "코미디"]) == [1, 2, 9]
    assert m.groups_of(["TV Movie", "unknown"]) == []
    assert m.group_of("  science   FICTION ") == 2


def test_custom_mapping_rejects_unknown_groups(tmp_path):
    with pytest.raises(ValueError):
        GenreMapper({"x": 11})
    path = tmp_path / "map.json"
    path.write_text('{"Giallo": 6}')
    assert GenreMapper.from_file(path).groups_of(["giallo"]) == [6]


def test_load_dataset_layout(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "ds"))
    assert len(ds.movies) == 24
    m = ds.by_id()[1]
    assert m.genres == ["Comedy"] and m.groups == [9]
    assert [p.name for p in ds.by_id()[1].image_paths] == ["poster.jpg", "still1.png"]
    assert ds.fingerprint() == load_dataset(tmp_path / "ds").fingerprint()


def test_missing_files_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="movies.csv"):
        load_dataset(tmp_path)


def test_thesis_rule_drops_cross_group_relations(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "ds"))
    raw, rule = relevance(ds, related_only=True), relevance(ds)
    assert 2 in raw[1]  # the cross-genre recommendation
    assert 2 not in rule[1]
    assert rule[1] <= raw[1]


def test_split_is_seeded_and_proportional():
    ids = list(range(1000))
    s = split_ids(ids, seed=3)
    assert (len(s.train), len(s.test), len(s.validation)) == (640, 260, 100)
    assert not set(s.train) & set(s.test) and not set(s.test) & set(s.validation)
    assert s == split_ids(ids, seed=3) and s != split_ids(ids, seed=4)


def test_triplet_sampler_respects_groups(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "ds"))
    rel = undirected(relevance(ds))
    groups = {m.id: m.groups for m in ds.movies}
    sampler = TripletSampler(ds.ids, groups, restrict(rel, ds.ids), seed=0)
    by_anchor = np.concatenate(sampler.epoch(batch_size=8, per="anchor"))
    by_pair = np.concatenate(sampler.epoch(batch_size=8, per="pair"))
    assert sorted(by_anchor[:, 0]) == sorted(sampler.anchors)  # each anchor once
    pairs = {(ds.ids[a], ds.ids[p]) for a, p, _ in by_pair}
    assert len(by_pair) == len(pairs) == sum(len(s) for s in restrict(rel, ds.ids).values())
    assert len(by_pair) > len(by_anchor)  # some movie in the fixture has two similar movies
    for a, p, n in np.concatenate([by_anchor, by_pair]):
        ida, idp, idn = ds.ids[a], ds.ids[p], ds.ids[n]
        assert idp in rel[ida]
        assert not set(groups[ida]) & set(groups[idn])
    np.testing.assert_array_equal(sampler.fixed(), sampler.fixed())


def test_real_dataset_counts(shared_dir):
    ds = load_dataset(shared_dir / "data" / "tmdb-similar")
    assert len(ds.movies) == 1000
    assert sum(len(s) for s in ds.related.values()) == 8289
    assert len(ds.related) == 970
    assert all(m.image_paths for m in ds.movies)
    rule = relevance(ds)
    assert sum(len(s) for s in rule.values()) < 8289  # the genre rule removes some pairs
