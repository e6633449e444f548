# Picaivid control API image (FastAPI on uvicorn). The same image carries the CLI:
#   docker build -t picaivid-api .
#   docker run --rm -p 8000:8000 -e DATABASE_URL=postgresql://... -e API_KEY=... -e SQS_QUEUE_URL=... picaivid-api
#   docker run --rm -v "$PWD/photos:/in" -v "$PWD/out:/out" --entrypoint picaivid picaivid-api render /in --out /out/listing.mp4
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    NUMBA_CACHE_DIR=/var/cache/picaivid/numba NUMBA_CPU_NAME=generic HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    DATABASE_URL=sqlite:////data/picaivid.db LOCAL_STORAGE_PATH=/data/storage WORK_DIR=/data/work \
    MODEL_CACHE_DIR=/app/ml_models

RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt requirements-nodeps.txt constraints.txt ./
# CPU torch first and pinned (requirements.txt pins the same version): never the CUDA build here.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install -c constraints.txt -r requirements.txt \
    && pip install --no-deps -r requirements-nodeps.txt
COPY . .
# librosa's kernels are compiled once, here, by one process (app/media/numba_cache.py): processes that
# compile into one cache at the same time poison it (SIGSEGV, numba#10128). NUMBA_CPU_NAME=generic keeps
# the cache valid on whatever CPU the task lands on; a container that finds it unusable (another CPU
# model, a read-only mount) recompiles under the cache's file lock or into a private directory.
RUN pip install --no-deps -e . \
    && mkdir -p /data "$NUMBA_CACHE_DIR" \
    && python -m app.media.numba_cache  # warm numba's cache (see above)
VOLUME ["/data"]
EXPOSE 8000
# uvicorn finishes in-flight requests on SIGTERM; the API holds no work of its own (the outbox does).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["sh", "-c", "picaivid db upgrade && exec uvicorn app.api.main:app --host 0.0.0.0 --port 8000 --proxy-headers"]
