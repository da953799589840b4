"""Outbound webhooks: Standard Webhooks signatures, the egress guard, the retry schedule."""
