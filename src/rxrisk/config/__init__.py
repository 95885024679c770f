"""Configuration: everything that shapes results besides the claims.

``settings`` (the run's settings loaded and checked together, as-of dates, the config digest),
``rules`` (metric settings and flag rules, and their evaluation), ``reference`` (the drug
reference and its factor editions), ``codesets`` (medical code sets), ``schema`` (names and
types of the member-table columns), ``toml_file`` (reading any settings file, one-line errors)
and ``resources`` (paths of the packaged data files).
No row logic lives here.
"""
