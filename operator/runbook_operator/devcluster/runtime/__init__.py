"""A small kubelet stand-in: pods of the project's own images run as real local processes.

kwok fakes every other pod (scale tests need that); its Stages leave pods with a project image
alone (:func:`images.kwok_exclusion`), and this runtime plays the kubelet for them on the same
node: it resolves env and volumes the way a kubelet does, runs each container in a bubblewrap
sandbox whose paths map to per-pod directories under the cluster's work dir, reports status as
a kubelet does, and writes output in the CRI log format that kwok's server reads for
``kubectl logs``.

Pure decisions live in :mod:`.images`, :mod:`.spec`, :mod:`.status`, :mod:`.restarts`,
:mod:`.probes` and :mod:`.sandbox`; :mod:`.kubelet` is the imperative shell (API, processes).
"""
