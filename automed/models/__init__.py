"""Model builders and post-processing."""
