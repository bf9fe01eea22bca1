"""The `kube` session fixture: a real control plane (or the cluster CCR_TEST_KUBECONFIG points at).

Other test folders get the very same cluster (one per pytest session) with, in their conftest.py:

    import sys, pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "k8s"))
    from controlplane import kube, terminal_summary  # noqa: E402,F401


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    terminal_summary(terminalreporter, config)

See tests/k8s/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

_here = str(Path(__file__).resolve().parent)
if _here not in sys.path:
    sys.path.insert(0, _here)

from controlplane import kube, terminal_summary  # noqa: E402,F401


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    terminal_summary(terminalreporter, config)
