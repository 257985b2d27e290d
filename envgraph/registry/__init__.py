"""Registries: the distribution API client, push, pull and the layer cache."""
