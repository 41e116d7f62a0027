import sys

from charlab.cli.main import main

sys.exit(main())
