"""Rates of the synthetic book (tune here): archetype shares, event rates, defect rates.

Archetype shares are per member, event rates per member-year, defect and oddity rates per row.
"""

from __future__ import annotations

P_CHRONIC = 0.022  # chronic opioid therapy (before cancer/sickle-cell/hospice additions)
P_SHOPPER = 0.002
P_MAT = 0.003
ACUTE_OPIOID_EPISODES = 0.155  # per member-year (non-chronic members)
P_CANCER = 0.012
P_CANCER_HISTORY = 0.02  # Z85.x only: no exclusion
P_HOSPICE_OF_CANCER = 0.08
P_HOSPICE_OTHER = 0.0003
P_SICKLE = 0.0004
P_SICKLE_TRAIT = 0.003
P_OUD_GENERAL = 0.001
P_SUD_ALCOHOL = 0.015
P_SUD_CANNABIS = 0.01
P_SUD_OTHER = 0.003
P_TOBACCO = 0.08

ED_RATE = {"general": 0.22, "chronic": 1.0, "shopper": 2.0, "mat": 1.2, "sickle": 3.0}
OVERDOSE_RATE = {
    "general": 0.00004,
    "acute": 0.0004,
    "chronic": 0.008,
    "shopper": 0.05,
    "oud": 0.04,
}

#: Per-row rates of the pharmacy defects and oddities (at least one of each per block of 2000+
#: rows). Names are the ``kind`` keys of the summary.
PHARMACY_DEFECTS = {
    # rejected (reasons)
    "member_id_null": 12e-5,
    "member_id_empty": 6e-5,
    "member_id_blank": 4e-5,
    "fill_date_null": 16e-5,
    "ndc_null": 6e-5,
    "ndc_empty": 4e-5,
    "ndc_letters": 8e-5,
    "ndc_10_bare_digits": 8e-5,
    "ndc_bad_hyphen_segments": 8e-5,
    "claim_status_invalid": 8e-5,
    "quantity_zero": 6e-5,
    "quantity_negative": 6e-5,
    "quantity_nan": 4e-5,
    "quantity_null": 6e-5,
    "days_supply_zero": 6e-5,
    "days_supply_over_365": 6e-5,
    "days_supply_negative": 2e-5,
    "days_supply_null": 6e-5,
}
PHARMACY_ODDITIES = {
    # valid after cleaning
    "ndc_hyphen_4_4_2": 5e-5,
    "ndc_hyphen_5_3_2": 5e-5,
    "ndc_hyphen_5_4_1": 5e-5,
    "ndc_hyphen_5_4_2": 5e-5,
    "ndc_spaces": 3e-5,
    "status_P": 1e-4,
    "status_PAID": 1e-4,
    "status_Paid": 5e-5,
    "status_null": 1e-4,
    "status_empty": 3e-5,
    "member_id_whitespace": 2e-4,
    "prescriber_id_whitespace": 1e-4,
    "prescriber_id_empty": 5e-4,
    "pharmacy_id_whitespace": 1e-4,
    "claim_id_whitespace": 1e-4,
}
P_REVERSAL = 0.008
P_REBILL_OF_REVERSAL = 0.5
P_DUPLICATE = 0.003
P_DUPLICATE_WHITESPACE = 0.05  # share of duplicate rows whose claim_id has surrounding whitespace
P_PRESCRIBER_NULL = 0.02
P_PHARMACY_NULL = 0.003

MEDICAL_DEFECTS = {
    "member_id_null": 10e-5,
    "member_id_empty": 4e-5,
    "service_date_null": 10e-5,
    "code_type_invalid": 10e-5,
    "code_empty": 6e-5,
    "code_null": 4e-5,
}
MEDICAL_ODDITIES = {
    "code_type_lowercase": 2e-4,
    "code_whitespace": 2e-4,
    "member_id_whitespace": 1e-4,
}
P_ICD_NODOT = 0.12  # ICD-10-CM codes written without the dot (T40.2X1A -> T402X1A)
P_T40_NODOT = 0.35
