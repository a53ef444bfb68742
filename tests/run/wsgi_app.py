"""A WSGI app for gunicorn under ``sockwise run``: answers with the worker's probe."""

import json

import run_probe


def app(environ, start_response):
    out = run_probe.record("gunicorn-request", environ.get("gunicorn.socket"))
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Connection", "close")])
    return [body]
