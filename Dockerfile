FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY api api
COPY core core
COPY worker worker
COPY graders graders
COPY cli cli
COPY migrations migrations
COPY reference reference
# The CPU build of torch keeps the image small; a GPU image installs the CUDA build instead.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir .
ENV AUTOGRADER_COURSE_DIR=/app/reference
CMD ["autograder", "serve", "--host", "0.0.0.0"]
