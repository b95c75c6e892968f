"""`python -m bench.bare_server --port P --workers N`: the bare app, served like `billing api`."""

from __future__ import annotations

import argparse

from cli.processes import serve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    serve("bench.bare_app:app", host="127.0.0.1", port=args.port, workers=args.workers)


if __name__ == "__main__":
    main()
