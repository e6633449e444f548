"""`python -m app.worker [--type cpu|gpu]` (WORKER_TYPE by default): the same as `picaivid worker`."""

from __future__ import annotations

import sys

from app.cli import main

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", *sys.argv[1:]]
    main()
