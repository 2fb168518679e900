"""Alias kept for old scripts: ``python -m wire.client ...`` runs the MuseHub client's command line.

The client is the installable package :mod:`musehub_client` (``musehub`` once
installed, or ``python -m musehub_client``); this module only forwards to
:func:`musehub_client.cli.main`, with the same commands, flags, output and exit codes.
"""

import sys

from musehub_client.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main(prog="python -m wire.client"))
