"""`python -m storage`: see `storage.cli`."""

from __future__ import annotations

import sys

from storage.cli import main

sys.exit(main())
