"""A local stand-in for the parts of DashScope and OSS this skill uses (stdlib only)."""

from .server import Sandbox, start
from .state import SandboxConfig

__all__ = ["Sandbox", "SandboxConfig", "start"]
