"""The backup Job's entry point stays light: `runbook-operator runner` must not import the
operator (kopf, the Kubernetes client, numpy/scikit-learn), which cost start-up time and most
of the runner's memory budget."""

import json
import subprocess
import sys

HEAVY = ("kopf", "kubernetes", "numpy", "sklearn", "aiohttp")


def test_runner_dispatch_imports_no_operator_modules() -> None:
    probe = (
        "import sys, json\n"
        "from runbook_operator.cli import main\n"
        "try:\n"
        "    main.main(['runner', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
