"""API keys: hashed, scoped, two at once for rotation; /health stays open."""

import pytest

from app.auth import KeyRing, hash_key
from app.cli import main
from tests.app.util import post_movie

READ, WRITE, WRITE2 = "mrk_read-key", "mrk_write-key", "mrk_rotated-write-key"


@pytest.fixture
def secured(make_client, tmp_path):
    keys = f"read:{hash_key(READ)},write:{hash_key(WRITE)},write:{hash_key(WRITE2)}"
    return make_client(f"sqlite:///{tmp_path / 'auth.db'}", api_keys=keys)


def test_scopes(secured):
    def h(key):
        return {"X-API-Key": key}

    assert post_movie(secured).status_code == 401
    secured.headers.update(h(READ))
    r = post_movie(secured)
    assert r.status_code == 403 and r.json()["error"] == "Forbidden"
    secured.headers.update(h(WRITE))
    movie = post_movie(secured).json()
    secured.headers.update(h(WRITE2))  # rotation: both write keys work
    assert post_movie(secured, seed=5).status_code == 201
    secured.headers.update(h(READ))
    assert secured.get(f"/movies/{movie['id']}").status_code == 200
    assert secured.get(f"/movies/{movie['id']}/similar").status_code == 200
    assert secured.get("/genre-groups").status_code == 200
    assert secured.delete(f"/movies/{movie['id']}").status_code == 403
    assert secured.patch(f"/movies/{movie['id']}", json={"year": 2000}).status_code == 403
    secured.headers.update(h("mrk_wrong"))
    r = secured.get("/movies")
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    del secured.headers["X-API-Key"]
    assert secured.get("/movies").status_code == 401
    assert secured.get("/health").status_code == 200
    assert secured.get("/openapi.json").status_code == 200


def test_keyring_parsing_and_hashing():
    ring = KeyRing.parse(f" read:{hash_key('a')} , write:{hash_key('b')}")
    assert (
        ring.scope_of("a") == "read"
        and ring.scope_of("b") == "write"
        and ring.scope_of("c") is None
    )
    assert KeyRing.parse("").open
    with pytest.raises(ValueError):
        KeyRing.parse("admin:" + hash_key("x"))
    with pytest.raises(ValueError):
        KeyRing.parse("read:plaintext-key")


def test_api_key_command_prints_a_matching_hash(capsys):
    assert main(["api-key", "--scope", "write"]) == 0
    out = capsys.readouterr().out
    key = out.split("shown once): ")[1].split()[0]
    entry = out.split("comma-separated): ")[1].strip()
    assert KeyRing.parse(entry).scope_of(key) == "write"
