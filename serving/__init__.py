"""Serving a model version over HTTP: the request contract, process control, one module per backend, the
rollout and the HTTP client. Importing the package imports nothing else (a bento ships part of it)."""
