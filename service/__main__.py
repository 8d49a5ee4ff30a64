"""``python -m service`` runs the ``persona`` command."""

import sys

from service.cli import main

sys.exit(main())
