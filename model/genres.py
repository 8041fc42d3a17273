"""The 10 genre groups of the thesis (Table 7) and the mapping from genre names to groups.

English (TMDB) and Korean (Naver) names both map; unknown names map to nothing. Override the mapping
with a JSON file of {"name": group_id} when a catalog uses its own labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

GENRE_GROUPS: dict[int, str] = {
    1: "Drama/Romance",
    2: "Fantasy/SF",
    3: "Animation",
    4: "Adventure",
    5: "Family",
    6: "Horror/Thriller/Mystery",
    7: "Noir/War/Action",
    8: "Documentary",
    9: "Comedy",
    10: "Musical",
}

# TMDB genres not in Table 7 are placed where their films sit in the thesis' grouping:
# Crime -> Noir (7), Western -> Action (7), History -> Drama (1), Music -> Musical (10),
# Science Fiction -> SF (2). "TV Movie" carries no genre signal and maps to nothing.
DEFAULT_GENRE_MAP: dict[str, int] = {
    # English (TMDB)
    "drama": 1, "romance": 1, "melodrama": 1, "history": 1,
    "fantasy": 2, "science fiction": 2, "sci-fi": 2, "sf": 2,
    "animation": 3,
    "adventure": 4,
    "family": 5,
    "horror": 6, "thriller": 6, "mystery": 6,
    "noir": 7, "war": 7, "action": 7, "crime": 7, "western": 7,
    "documentary": 8,
    "comedy": 9,
    "musical": 10, "music": 10,
    # Korean (Naver)
    "드라마": 1, "멜로/로맨스": 1, "멜로": 1, "로맨스": 1, "사극": 1,
    "판타지": 2, "SF": 2,
    "애니메이션": 3,
    "어드벤처": 4, "모험": 4,
    "가족": 5,
    "공포(호러)": 6, "공포": 6, "호러": 6, "스릴러": 6, "미스터리": 6,
    "느와르": 7, "누아르": 7, "전쟁": 7, "액션": 7, "범죄": 7, "서부": 7,
    "다큐멘터리": 8,
    "코미디": 9,
    "뮤지컬": 10, "음악": 10,
}  # fmt: skip


class GenreMapper:
    """Maps genre names to the 10 groups (case-insensitive for Latin names)."""

    def __init__(self, mapping: Mapping[str, int] | None = None) -> None:
        mapping = DEFAULT_GENRE_MAP if mapping is None else mapping
        bad = {k: v for k, v in mapping.items() if v not in GENRE_GROUPS}
        if bad:
            raise ValueError(f"genre map points at unknown groups: {bad}")
        self._map = {self._key(k): v for k, v in mapping.items()}

    @staticmethod
    def _key(name: str) -> str:
        return " ".join(name.strip().lower().split())

    @classmethod
    def from_file(cls, path: str | Path) -> GenreMapper:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def group_of(self, name: str) -> int | None:
        return self._map.get(self._key(name))

    def groups_of(self, names: Iterable[str]) -> list[int]:
        """Sorted distinct groups of the given genre names; unknown names are ignored."""
        return sorted({g for n in names if (g := self.group_of(n)) is not None})
