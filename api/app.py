"""The ASGI application object for uvicorn (`autograder serve`)."""

from api.main import create_app

app = create_app()
