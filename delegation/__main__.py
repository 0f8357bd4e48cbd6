import sys

from delegation.cli import main

sys.exit(main())
