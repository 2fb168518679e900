"""``python -m musehub_client ...``: the MuseHub client's command line."""

import sys

from musehub_client.cli import main

sys.exit(main(prog="python -m musehub_client"))
