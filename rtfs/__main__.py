import sys

from rtfs.cli import main

sys.exit(main())
