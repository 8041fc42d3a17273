# movierec API on a CUDA runtime. Build: docker build -t movierec .
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MOVIEREC_DATA_DIR=/data \
    HF_HOME=/models/hf

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# CUDA builds of torch/torchvision from PyPI, then the project; faiss-gpu replaces faiss-cpu.
COPY pyproject.toml README.md ./
COPY app ./app
COPY model ./model
COPY alembic ./alembic
COPY alembic.ini ./
RUN pip install --upgrade pip \
 && pip install torch==2.14.1 torchvision==0.29.1 \
 && pip install . \
 && pip uninstall -y faiss-cpu \
 && pip install faiss-gpu-cu12

RUN useradd --create-home --uid 10001 movierec \
 && mkdir -p /data /models && chown -R movierec:movierec /data /models
USER movierec

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/health || exit 1

# Migrations first, then the server (models load in the lifespan, on the GPU when there is one).
CMD ["sh", "-c", "movierec migrate && exec uvicorn app.main:app --host 0.0.0.0 --port 8000"]
