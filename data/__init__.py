"""Packaged data of rxrisk: drug reference, medical code sets and default rules (no code)."""
