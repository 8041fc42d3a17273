"""schemathesis: property-based requests generated from our own OpenAPI, in process, fixed seed.
0 server errors and schema-conforming responses."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.auth import hash_key
from tests.app.util import post_movie

KEY = "mrk_fuzz-write-key"


@pytest.fixture(scope="module")
def fuzz_app(tiny_models, tiny_embedder, tmp_path_factory):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.app.conftest import tiny_settings

    root = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        tiny_settings(
            tiny_models,
            root,
            max_images=2,
            max_image_bytes=100_000,
            max_body_bytes=300_000,
            api_keys=f"write:{hash_key(KEY)}",
        ),
        lambda _s: tiny_embedder,
    )
    with TestClient(
        app, headers={"X-API-Key": KEY}
    ) as client:  # runs the lifespan; schemathesis then calls the live app
        for i in range(3):
            assert (
                post_movie(client, title=f"seed {i}", seed=i, external_id=f"s{i}").status_code
                == 201
            )
        yield app


def fuzz_operation(operation, counts: dict[str, int]) -> None:
    """Run the seeded Hypothesis cases of one API operation."""
    from hypothesis import given

    @given(case=operation.as_strategy())
    @settings(
        max_examples=30,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        # Whether bytes decode as an image cannot be said in OpenAPI: a schema-valid upload
        # may rightly get 415/422, so only that check is left out.
        case.call_and_validate(
            headers={"X-API-Key": KEY}, excluded_checks=[positive_data_acceptance]
        )
        counts[operation.label] = counts.get(operation.label, 0) + 1

    run()


def test_openapi_fuzz(fuzz_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    counts: dict[str, int] = {}
    for result in schema.get_all_operations():
        fuzz_operation(result.ok(), counts)
    print(
        f"\n[schemathesis] {sum(counts.values())} cases over {len(counts)} operations, 0 failures"
    )
    assert len(counts) >= 9
