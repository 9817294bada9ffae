"""oint-py: a drop-in Python port of the oint CLI (OpenIntegrations) for Bitrix24 time tracking."""

__version__ = "0.1.0"
