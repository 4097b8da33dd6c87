import sys

from media_store.cli.main import main

sys.exit(main())
