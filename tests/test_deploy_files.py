"""Docker cannot run here: parse the Dockerfile and compose file and check them against Settings."""

from pathlib import Path

import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTING_NAMES = {f"MOVIEREC_{name.upper()}" for name in Settings.model_fields}


def dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            rows.append((op.upper(), rest.strip()))
    return rows


def test_dockerfile_is_cuda_non_root_with_healthcheck_and_migrations():
    rows = dockerfile()
    ops = [op for op, _ in rows]
    assert rows[0][0] == "FROM" and "nvidia/cuda" in rows[0][1] and "runtime" in rows[0][1]
    user = [rest for op, rest in rows if op == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert "HEALTHCHECK" in ops and "/health" in next(r for o, r in rows if o == "HEALTHCHECK")
    assert ops.index("USER") < ops.index("CMD")
    cmd = next(r for o, r in rows if o == "CMD")
    assert cmd.index("movierec migrate") < cmd.index("uvicorn app.main:app")
    expose = next(r for o, r in rows if o == "EXPOSE")
    assert "--port " + expose in cmd
    envs = " ".join(r for o, r in rows if o == "ENV")
    assert "MOVIEREC_DATA_DIR=/data" in envs
    for copied in ("app", "model", "alembic"):
        assert any(o == "COPY" and r.startswith(copied) for o, r in rows)


def test_compose_matches_settings_ports_and_volumes():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    api, db = compose["services"]["api"], compose["services"]["db"]
    env = api["environment"]
    assert set(env) <= SETTING_NAMES, set(env) - SETTING_NAMES
    assert env["MOVIEREC_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@db:5432/" in env["MOVIEREC_DATABASE_URL"]
    user = db["environment"]["POSTGRES_USER"]
    assert f"//{user}:{db['environment']['POSTGRES_PASSWORD']}@" in env["MOVIEREC_DATABASE_URL"]
    assert env["MOVIEREC_DATABASE_URL"].endswith("/" + db["environment"]["POSTGRES_DB"])
    expose = next(r for o, r in dockerfile() if o == "EXPOSE")
    assert f"8000:{expose}" in api["ports"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in api["volumes"]}
    assert (
        env["MOVIEREC_DATA_DIR"] in mounts
        and mounts[env["MOVIEREC_DATA_DIR"]] in compose["volumes"]
    )
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    gpu = api["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


def test_env_example_names_only_real_settings():
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.lstrip("# ").strip()
        if line.startswith("MOVIEREC_") and "=" in line:
            names.add(line.split("=", 1)[0])
    assert names <= SETTING_NAMES, names - SETTING_NAMES
    for required in (
        "MOVIEREC_DATABASE_URL",
        "MOVIEREC_DATA_DIR",
        "MOVIEREC_TEXT_MODEL",
        "MOVIEREC_IMAGE_MODEL",
        "MOVIEREC_IMAGE_WEIGHTS",
        "MOVIEREC_FUSION_CHECKPOINT",
        "MOVIEREC_DEVICE",
    ):
        assert required in names
