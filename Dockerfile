# One image for every piece of the distributed deployment (docker-compose.yml).
#
#   docker build -t dlp-autograder:latest .                              CPU build of torch:
#                                                      api, migrate, CPU workers
#   docker build -t dlp-autograder:gpu --build-arg TORCH_INDEX=cu128 .   CUDA build of torch:
#                                                      GPU workers (pick the CUDA index that
#                                                      matches the hosts' NVIDIA driver)
#
# TORCH_INDEX names a wheel index of download.pytorch.org/whl/ (cpu, cu126, cu128, ...):
# torch==2.13.0 is installed from it first, so `pip install` of the project finds it
# already there (2.13.0+cpu and 2.13.0+cu128 both satisfy torch==2.13.0).
FROM python:3.11-slim
ARG TORCH_INDEX=cpu
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY api api
COPY core core
COPY worker worker
COPY graders graders
COPY protocol protocol
COPY cli cli
COPY migrations migrations
COPY scripts/worker-entrypoint scripts/seccomp-worker.json scripts/
# The bundled course: only `autograder migrate` reads it (into the database); workers
# grade from the bundles the database names, never from this folder.
COPY reference reference
RUN pip install --no-cache-dir torch==2.13.0 --index-url "https://download.pytorch.org/whl/${TORCH_INDEX}" \
 && pip install --no-cache-dir -e ".[s3]"
ENV AUTOGRADER_COURSE_DIR=/app/reference \
    AUTOGRADER_DATA_DIR=/var/lib/autograder
CMD ["autograder", "serve", "--host", "0.0.0.0"]
