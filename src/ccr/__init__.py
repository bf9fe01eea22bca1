"""claude-code-runner: a self-hosted, Kubernetes-native runner for Claude Code."""

__version__ = "0.1.0"
