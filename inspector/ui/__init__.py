"""The operator's page: live state filled by the ``ui`` sink, a Starlette app over it, and
uvicorn serving it on its own thread. Starlette and uvicorn (extra ``[ui]``) are imported
only by :mod:`inspector.ui.app` and :mod:`inspector.ui.server`, when the page is on."""
