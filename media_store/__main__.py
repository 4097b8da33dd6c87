import sys

from media_store.cli import main

sys.exit(main())
