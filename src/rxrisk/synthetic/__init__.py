"""Seeded synthetic book of business: pharmacy claims, medical events, eligibility and members.

:func:`generate_book` writes ``pharmacy.parquet`` and ``medical.parquet`` for benchmarks, demos and
tests of the scoring engine, and ``eligibility.parquet`` and ``members.parquet`` (enrollment spans
and birth dates, drawn from a random stream of their own, see
:mod:`~rxrisk.synthetic.enrollment`) for ``rxrisk measures``: measure the default book (claims
dated in 2025) with ``--year 2025``. The book is made of member *archetypes* with realistic rates (per
member-year; the date range may be any length):

* everybody: maintenance drugs refilled every 30 or 90 days plus acute fills of untracked drugs
  (made-up 11-digit NDCs that are not in the drug reference), about 20 claims per member-year;
* acute opioid users (~14%): one short fill of 3-7 days, sometimes a refill;
* chronic opioid users (~2.5%): 28/30-day refills with jitter, early refills (overlaps), late gaps,
  dose escalation or tapering, long-acting + short-acting combinations (oxycodone/morphine ER,
  fentanyl patches, methadone, ...), daily MME drawn log-normally so that a share is above 50 and 90;
  benzodiazepine (~25%), gabapentinoid (~30%), muscle-relaxant and z-drug co-use; naloxone for some;
* shoppers (~0.2%): many overlapping opioid fills from 4-10 prescribers and 3-8 pharmacies;
* buprenorphine MAT (~0.3%, some on naltrexone instead) with OUD diagnoses;
* cancer, hospice and sickle-cell members (the exclusions), many of them on opioids;
* population-wide benzodiazepine, gabapentinoid, muscle-relaxant, z-drug and stimulant use.

Medical rows are ordinary visits (codes in no category), ED visits (~0.25 per member-year, more for
opioid users), opioid overdoses (~0.8% of chronic users per year, more for shoppers and OUD) written
with and without dots, near-misses that must not count (adverse effect ``T40.2X5A``, subsequent
encounter ``T40.2X1D``, cocaine ``T40.5X1A``, sickle-cell trait ``D57.3``, cancer history ``Z85.3``,
tobacco ``F17.210``), OUD and other SUD, cancer, sickle cell and hospice codes.

A small share of rows carries every rejection reason (null/empty member ids, null dates, bad NDCs,
status ``X``, bad quantities and days supply, reversals, duplicate claim ids, whitespace) together
with valid oddities (hyphenated 10-digit NDCs, NDCs with spaces, ``P``/``R``/``PAID``/null
statuses, lower-case code types, ``450`` for ``0450``).

Determinism: members are generated in fixed blocks of :data:`BLOCK_MEMBERS`, each from its own
child of ``numpy.random.SeedSequence(seed)``, so the same ``(members, seed, start, end)`` gives
byte-identical files whatever ``row_group_size``. Rows are ordered by block, then by fill/service
date with random ties (within a member they are not sorted by anything else). Everything is
vectorised numpy; memory is bounded by one block (blocks are streamed to the Parquet writer), so a
book of any size fits in memory as one file per table.

Parts: with ``part_members=K`` the book is written as ``pharmacy/part-00000.parquet``, ... and
``medical/part-00000.parquet``, ... (and the same in ``eligibility/`` and ``members/``): part ``p``
holds members ``[p*K, min((p+1)*K, members))`` (with the extra members of its eligibility, who
have no claims) and each part file is closed when complete. Blocks are then also cut at part boundaries, so the same
``(members, seed, K)`` gives byte-identical parts, and when ``K`` is a multiple of
:data:`BLOCK_MEMBERS` the parts read in name order hold exactly the rows of the single-file book.
Member ids, claim numbers (sequential over the whole book) and the prescriber/pharmacy pools are
those of the whole book; reversals and duplicates stay within their block, hence their part.

Modules: :mod:`~rxrisk.synthetic.writer` (:func:`generate_book`, blocks, parts, the summary),
:mod:`~rxrisk.synthetic.rates` (every rate; tune here), :mod:`~rxrisk.synthetic.catalog` (drug
products picked from the reference, untracked NDCs), :mod:`~rxrisk.synthetic.pools`
(prescribers and pharmacies), :mod:`~rxrisk.synthetic.block` (one block of members and its
drawing primitives), :mod:`~rxrisk.synthetic.archetypes` (who is who),
:mod:`~rxrisk.synthetic.opioids`, :mod:`~rxrisk.synthetic.everyday_drugs` and
:mod:`~rxrisk.synthetic.medical` (the rows of each archetype), :mod:`~rxrisk.synthetic.medical_codes`
(the code vocabulary), :mod:`~rxrisk.synthetic.claims` (reversals, duplicates, claim ids),
:mod:`~rxrisk.synthetic.defects` (bad rows on purpose), :mod:`~rxrisk.synthetic.enrollment`
(eligibility spans and birth dates), :mod:`~rxrisk.synthetic.tables` (the
schemas and a block's Arrow tables), :mod:`~rxrisk.synthetic.draws` and
:mod:`~rxrisk.synthetic.strings` (vectorised helpers).
"""

from __future__ import annotations

from rxrisk.synthetic.enrollment import ELIGIBILITY_SCHEMA, MEMBERS_SCHEMA
from rxrisk.synthetic.rates import PHARMACY_DEFECTS, PHARMACY_ODDITIES
from rxrisk.synthetic.tables import MEDICAL_SCHEMA, PHARMACY_SCHEMA
from rxrisk.synthetic.writer import BLOCK_MEMBERS, generate_book

__all__ = [
    "BLOCK_MEMBERS",
    "ELIGIBILITY_SCHEMA",
    "MEDICAL_SCHEMA",
    "MEMBERS_SCHEMA",
    "PHARMACY_DEFECTS",
    "PHARMACY_ODDITIES",
    "PHARMACY_SCHEMA",
    "generate_book",
]
