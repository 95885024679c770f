"""The release number, in one place (the package, audits and report pages read it)."""

__version__ = "0.1.0"
