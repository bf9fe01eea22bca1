"""Debian's Chromium for Playwright: where it is and the flags a closed network needs."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("CCR_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google's hosts on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
