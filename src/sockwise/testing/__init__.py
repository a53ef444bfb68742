"""Test helpers shipped with sockwise: real PostgreSQL, real network faults, a real HTTP server.

* :class:`PostgresServer`: a throwaway PostgreSQL cluster (or an external one from a DSN) that
  tests can stop, restart, crash and whose backends they can terminate.
* :class:`NetnsPair`: two Linux network namespaces joined by a veth pair, with
  :meth:`NetnsPair.blackhole` to make the server vanish without a FIN, RST or ICMP.
* :class:`LocalHTTPServer` / :func:`serve_http`: an HTTP/1.1 keep-alive server on loopback that
  records each request (:class:`RecordedRequest`) with the accepted socket's options
  (:func:`read_socket_options`); a handler returning a :class:`Reply` decides the answers.
* :func:`require_or_skip`: skip a test whose prerequisite is missing, or fail it when
  ``CI=true``.

Nothing here runs at import time; root and iproute2 are needed for namespaces, the PostgreSQL
server binaries for clusters.
"""

from sockwise.testing._ci import is_ci, require_or_skip
from sockwise.testing._http import (
    LocalHTTPServer,
    RecordedRequest,
    Reply,
    read_socket_options,
    serve_http,
)
from sockwise.testing._netns import (
    NetnsError,
    NetnsPair,
    close_all_pairs,
    enter_netns,
    netns_unavailable_reason,
    remove_stale_namespaces,
)
from sockwise.testing._postgres import (
    PostgresServer,
    PostgresUnavailableError,
    close_all_servers,
    find_pg_bin,
    pg_unavailable_reason,
)

__all__ = [
    "LocalHTTPServer",
    "NetnsError",
    "NetnsPair",
    "PostgresServer",
    "PostgresUnavailableError",
    "RecordedRequest",
    "Reply",
    "close_all_pairs",
    "close_all_servers",
    "enter_netns",
    "find_pg_bin",
    "is_ci",
    "netns_unavailable_reason",
    "pg_unavailable_reason",
    "read_socket_options",
    "remove_stale_namespaces",
    "require_or_skip",
    "serve_http",
]
