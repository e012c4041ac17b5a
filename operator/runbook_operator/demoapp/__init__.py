"""The demo app: a tiny HTTP service whose version, error rate and latency come from its env
(:mod:`.app`), run by the local cluster's runtime as the image ``runbook-demo-app``, and the
traffic generator that tests and ``make demo`` send through the gateway (:mod:`.traffic`)."""
