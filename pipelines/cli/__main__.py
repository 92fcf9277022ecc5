"""`python -m pipelines.cli`: the same as the `bitrix24-sync` script."""

import sys

from pipelines.cli import main

sys.exit(main())
