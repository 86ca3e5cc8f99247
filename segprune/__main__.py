import sys

from segprune.cli.main import main

sys.exit(main())
