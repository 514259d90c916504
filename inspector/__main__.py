import sys

from inspector.cli.main import main

sys.exit(main())
