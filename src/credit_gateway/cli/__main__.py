"""`python -m credit_gateway.cli`."""

import sys

from credit_gateway.cli.main import main

sys.exit(main())
