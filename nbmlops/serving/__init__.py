"""Serving: a registered model behind HTTP in its own process, with metrics and a request log."""

from .abtest import ABSummary, ab_summary
from .batch import BatchResult, batch_predict
from .deployments import Deployment, get_deployment, list_deployments, serve

__all__ = ["serve", "Deployment", "get_deployment", "list_deployments", "ab_summary", "ABSummary", "batch_predict",
           "BatchResult"]
