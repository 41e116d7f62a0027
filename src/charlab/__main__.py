import sys

from charlab.cli import main

sys.exit(main())
