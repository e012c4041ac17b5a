"""`python -m runbook_operator.cli.plugin`, the same as `kubectl-runbook`."""

import sys

from runbook_operator.cli.plugin.main import main

sys.exit(main())
