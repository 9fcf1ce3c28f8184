"""Entry point of the proxy server process: ``python -m shakedown.netproxy --control-port P``."""

from __future__ import annotations

import sys

from ._server import main

if __name__ == "__main__":
    sys.exit(main())
