"""Chart tests run the real helm binary (see helm.py for how it is found); test_install.py also needs the
k8s tier's control plane, shared through its `kube` fixture (one cluster per pytest session)."""

import sys
from pathlib import Path

_k8s = str(Path(__file__).resolve().parents[1] / "k8s")
if _k8s not in sys.path:
    sys.path.insert(0, _k8s)

from controlplane import kube  # noqa: E402,F401
