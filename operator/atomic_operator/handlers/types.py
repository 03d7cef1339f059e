"""Types of kopf's handler keyword arguments, as its protocols declare them."""

from __future__ import annotations

import logging
from typing import Any

Logger = logging.Logger | logging.LoggerAdapter[Any]
