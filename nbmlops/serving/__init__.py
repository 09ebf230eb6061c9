"""Serving: a registered model behind HTTP in its own process, with metrics and a request log."""

from .deployments import Deployment, get_deployment, list_deployments, serve

__all__ = ["serve", "Deployment", "get_deployment", "list_deployments"]
