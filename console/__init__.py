"""The operator console: a FastAPI app over the live Kafka picture and the alerts store.

See docs/CONSOLE.md. The app factory is :func:`console.app.create_app`; the service (uvicorn) is
:mod:`console.service`. Nothing here is imported at package import time.
"""
