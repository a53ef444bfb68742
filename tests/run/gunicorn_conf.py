"""gunicorn configuration for the ``sockwise run`` tests: each process records a probe."""

import run_probe

control_socket_disable = True  # gunicorn >= 25 would create ~/.gunicorn/gunicorn.ctl


def when_ready(server):
    """In the master, once listening: its own probe and the port it got."""
    run_probe.record("gunicorn-master", port=server.LISTENERS[0].sock.getsockname()[1])


def post_worker_init(worker):
    """In each worker, after it booted."""
    run_probe.record("gunicorn-worker")
