"""The ASGI app of `autograder serve`, for each of its processes: with several
(`--processes`), uvicorn starts each by importing this module, so the embedded
broker's transport is installed in every one of them, not only in the parent."""

from worker import embedded_broker

embedded_broker.install()  # the API sends too: in embedded mode, whole files only

from api.app import app  # noqa: E402 - after the transport is installed

__all__ = ["app"]
