"""The composition root: the REST API (``ccr.api``) with the dashboard (``ccr.dashboard``) mounted on it.

``ccr serve`` runs this app. The API never imports the dashboard, the dashboard imports the API's
dependencies; only this module knows both.
"""

from __future__ import annotations

from fastapi import FastAPI

from ccr.api.app import create_app as create_api
from ccr.core.settings import Settings
from ccr.core.store import TaskStore
from ccr.dashboard import mount


def create_app(settings: Settings | None = None, store: TaskStore | None = None) -> FastAPI:
    return create_api(settings, store, extensions=[mount])
