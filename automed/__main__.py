"""``python -m automed`` is the ``automed`` command."""

from automed.cli import main

main()
