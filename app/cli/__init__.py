"""`scalpel`: the command line over scalpel_client (no server, worker or torch imports).

scalpel_client is its own package (client/), which the root project does not declare: a
`scalpel` installed without it ends here with one line and exit code 2, not a traceback."""

import sys

try:
    import scalpel_client  # noqa: F401
except ModuleNotFoundError as exc:
    if exc.name != "scalpel_client":
        raise
    print(
        "error: the scalpel CLI needs the scalpel-client package: pip install ./client",
        file=sys.stderr,
    )
    raise SystemExit(2) from None
