# MMoE Lab dashboard. CPU torch by default. For a CUDA image, take torch's CUDA wheels
# (they bundle the CUDA runtime; the host needs only the NVIDIA driver + container toolkit):
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t mmoe-lab:cuda .
#   docker run --gpus all -p 127.0.0.1:8501:8501 -v mmoe-runs:/data/runs mmoe-lab:cuda
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    MMOE_HOME=/data/runs STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 mmoe

WORKDIR /app
COPY requirements.txt pyproject.toml README.md ./
RUN pip install --extra-index-url ${TORCH_INDEX} -r requirements.txt
COPY mmoe ./mmoe
COPY dashboard ./dashboard
COPY data ./data
COPY .streamlit ./.streamlit
RUN pip install --no-deps -e . && mkdir -p /data/runs && chown -R mmoe:mmoe /data /app

USER mmoe
VOLUME ["/data/runs"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS http://localhost:8501/_stcore/health || exit 1
# 0.0.0.0 on purpose: inside a container 127.0.0.1 (the default of .streamlit/config.toml) cannot be
# reached through the published port. Publish it on the host's loopback only unless it sits behind
# authentication: docker run -p 127.0.0.1:8501:8501 ... (README, "Security posture")
CMD ["streamlit", "run", "dashboard/app.py", "--server.port=8501", "--server.address=0.0.0.0"]
