"""Low-level socket reading shared by the guard, the metrics, the CLI and the drop-in.

One module per job, each importing nothing of sockwise above :mod:`sockwise._log`:

* :mod:`~sockwise._net.records`: :class:`SocketRecord`/:class:`TcpInfo`, the kernel's TCP
  state names and masks;
* :mod:`~sockwise._net.addr`: address decoding (sock_diag, ``/proc``, psutil) and formatting;
* :mod:`~sockwise._net.proc`: ``/proc`` readers (``net/tcp{,6}``, ``<pid>/fd``, ``net/netstat``
  counters, sysctls, network-namespace identity);
* :mod:`~sockwise._net.netlink`: the sock_diag reader (``inet_diag``, ``tcp_info`` dumps);
* :mod:`~sockwise._net.psutil_reader`: the psutil fallback reader;
* :mod:`~sockwise._net.sockets`: socket predicates and per-descriptor readers
  (``getsockopt(TCP_INFO)``, ``TCP_USER_TIMEOUT``, blocking mode).
"""
