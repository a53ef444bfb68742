"""The argument parser and the dispatcher behind ``sockwise`` and ``python -m sockwise``.

Exit status: 0 on success, 1 when the command could not do its job (an unknown PID, a failed
benchmark), 2 for bad usage (argparse's convention). Errors are one line on stderr, prefixed
``sockwise <command>: error:``; a traceback is never shown for an expected failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Final

from sockwise._version import __version__

Handler = Callable[[argparse.Namespace], int]

#: Every command the CLI offers (the test suite fails when one has no end-to-end test).
COMMANDS: Final = ("policy", "doctor", "inspect", "bench", "run", "alerts")


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"PID must be a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"PID must be >= 1, got {value}")
    return value


def _positive(kind: type[int] | type[float], what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{what} must be > 0, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``sockwise`` argument parser with its sub-commands."""
    from sockwise._bench.runner import BENCHMARKS
    from sockwise.cli._alerts import add_arguments as add_alerts_arguments
    from sockwise.cli._run import add_arguments as add_run_arguments

    parser = argparse.ArgumentParser(
        prog="sockwise",
        description="Connection hygiene for Python: turn TCP's silent hangs into bounded, "
        "explained failures. Without a command: show the policy in force.",
    )
    parser.add_argument("--version", action="version", version=f"sockwise {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "policy",
        help="show the effective socket policy",
        description="Show the policy sockwise applies (SOCKWISE_* variables over the defaults), "
        "each setting with its meaning, and the time within which a silent peer is declared dead.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--preset",
        metavar="NAME",
        help="show a preset instead: default, interactive, kernel, aws-nlb, azure-lb, nat:SECONDS",
    )

    d = sub.add_parser(
        "doctor",
        help="check the kernel's TCP settings (read only)",
        description="Read the kernel TCP settings that matter (keepalive, retries, somaxconn, SYN "
        "queue, ephemeral ports, TIME_WAIT reuse, listen-queue overflow counters) and give each a "
        "verdict (ok, warn, info, unknown), its meaning and the command that would fix it. "
        "Nothing is changed.",
    )
    d.add_argument("--json", action="store_true", help="print JSON")
    d.add_argument(
        "--proc-root", metavar="DIR", help="procfs location (default: $SOCKWISE_PROC_ROOT or /proc)"
    )

    i = sub.add_parser(
        "inspect",
        help="show a process's TCP sockets, like ss",
        description="Show one process's TCP sockets: an ss -s style summary, every established "
        "socket with Recv-Q/Send-Q, age, origin and stall (awaiting reply, retransmitting, zero "
        "window, unread), CLOSE_WAIT sockets with peer and age, listening sockets with "
        "accept-queue fill, TIME_WAIT by destination.",
    )
    i.add_argument("pid", nargs="?", type=_pid, metavar="PID", help="process (default: this one)")
    i.add_argument(
        "--json", action="store_true", help="print JSON (one object per line in --watch)"
    )
    i.add_argument(
        "--watch",
        nargs="?",
        const=2.0,
        type=_positive(float, "--watch SECONDS"),
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until Ctrl-C",
    )
    i.add_argument(
        "--count", type=_positive(int, "--count"), metavar="N", help="stop after N readings"
    )
    i.add_argument(
        "--stall-after",
        type=_positive(float, "--stall-after SECONDS"),
        default=None,
        metavar="SECONDS",
        help="silence that makes an established socket stalled (default: the guard's, 30)",
    )
    i.add_argument("--proc-root", default="/proc", metavar="DIR", help=argparse.SUPPRESS)

    b = sub.add_parser(
        "bench",
        help="measure what the policy changes (HTTP, Postgres, Nagle, dead peers)",
        description="Run the benchmarks with embedded local servers: pooled vs unpooled HTTP, "
        "HTTPS and PostgreSQL, Nagle vs TCP_NODELAY, dead-peer detection in network namespaces "
        "(root), and the cost of harden(). Prints a table; saves JSON and a PNG plot "
        "(default: benchmarks/results/ in a sockwise checkout, else the current directory).",
    )
    b.add_argument("--quick", action="store_true", help="short run (about a minute)")
    b.add_argument("--json", metavar="PATH", help="where to save the JSON results")
    b.add_argument("--plot", metavar="PATH", help="where to save the PNG plot")
    b.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    b.add_argument(
        "--only",
        metavar="NAMES",
        help=f"comma-separated subset of: {','.join(BENCHMARKS)}",
    )
    b.add_argument(
        "--render-docs",
        action="store_true",
        help="run nothing: rewrite README's benchmark table from the results file "
        "(the docs render the same file when built)",
    )
    b.add_argument(
        "--check-docs",
        action="store_true",
        help="run nothing: exit 1 if README's benchmark table disagrees with the results file",
    )
    b.add_argument(
        "--results",
        metavar="PATH",
        help="results file for --render-docs/--check-docs "
        "(default: benchmarks/results/sockwise-bench.json of the checkout)",
    )
    add_run_arguments(
        sub.add_parser("run", help="run a command with every Python process hardened")
    )
    add_alerts_arguments(
        sub.add_parser(
            "alerts",
            help="print the Prometheus alerting rules or Grafana dashboard",
            description="Print the Prometheus alerting rules (--rules) or the Grafana dashboard "
            "(--dashboard) shipped with sockwise, or where they are installed (default).",
        )
    )
    return parser


def _handlers() -> dict[str | None, Handler]:
    from sockwise.cli._alerts import cmd_alerts
    from sockwise.cli._bench import cmd_bench
    from sockwise.cli._doctor import cmd_doctor
    from sockwise.cli._inspect import cmd_inspect
    from sockwise.cli._policy import cmd_default, cmd_policy

    return {
        None: cmd_default,
        "policy": cmd_policy,
        "doctor": cmd_doctor,
        "inspect": cmd_inspect,
        "bench": cmd_bench,
        "alerts": cmd_alerts,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sockwise`` command line and return its exit status.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when omitted.

    """
    from sockwise.cli._bench import BenchUsageError
    from sockwise.cli._inspect import InspectError
    from sockwise.cli._policy import PolicyError

    arglist = list(sys.argv[1:] if argv is None else argv)
    if arglist[:1] == ["run"]:  # its own parser: everything after -- belongs to the command
        from sockwise.cli._run import run

        return run(arglist[1:])
    parser = build_parser()
    args = parser.parse_args(arglist)
    name = f"sockwise {args.command}" if args.command else "sockwise"
    try:
        return _handlers()[args.command](args)
    except BenchUsageError as exc:
        parser.exit(2, f"{name}: error: {exc}\n")
    except (InspectError, PolicyError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `sockwise inspect --watch | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
