import sys

from ssl_train.cli import main

sys.exit(main())
