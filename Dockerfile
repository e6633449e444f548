# Picaivid application image (CLI today; the control API joins it with fleet mode).
#   docker build -t picaivid .
#   docker run --rm -v "$PWD/photos:/in" -v "$PWD/out:/out" picaivid render /in --music /in/song.mp3 --out /out/listing.mp4
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    NUMBA_CACHE_DIR=/var/cache/picaivid/numba HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    DATABASE_URL=sqlite:////data/picaivid.db LOCAL_STORAGE_PATH=/data/storage WORK_DIR=/data/work \
    MODEL_CACHE_DIR=/app/ml_models

RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt constraints.txt ./
# CPU torch first and pinned (requirements.txt pins the same version): never the CUDA build here.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install -c constraints.txt -r requirements.txt
COPY . .
RUN pip install --no-deps -e . \
    && mkdir -p /data "$NUMBA_CACHE_DIR" \
    && python -c "import librosa.beat, librosa.onset, librosa.feature"  # warm numba's cache
VOLUME ["/data"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["picaivid"]
CMD ["--help"]
