"""Standard opioid measures: PQA- and HEDIS-style rates from claims, eligibility and members.

Owns the measures settings and periods, the eligibility and members intake, the per-member
measure quantities (the wrapper of ``kernels.measures``), the measure rules, the member detail,
the summary of rates and the measures report. ``rxrisk.measures`` is the public face.
"""
