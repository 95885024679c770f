"""Per-batch work of the streaming path: no hashing on one-partition runs, code-set patterns
run once per (code space, code) pair, tracked rows taken rather than filtered, and
``claim_status`` read as plain text, NDC texts looked up once per run; each gives the results
of the work it replaces."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_stream import assert_same

import rxrisk
from rxrisk.clock import Clock
from rxrisk.config.settings import load_config
from rxrisk.engines import partitions, stream
from rxrisk.engines.batches import open_batches
from rxrisk.engines.stream import StreamOptions, ingest_stream
from rxrisk.ingest import sources, validate
from rxrisk.ingest.drugs import DrugTable
from rxrisk.io.arrow import keep_rows

FEW = settings(max_examples=40, deadline=None)

texts = st.one_of(st.none(), st.sampled_from(["", " ", "\t", "a", " a", "b\n", "M001", "M002 "]))


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    from rxrisk.synthetic import generate_book

    folder = tmp_path_factory.mktemp("book")
    generate_book(folder, members=600, seed=11)
    return folder / "pharmacy.parquet", folder / "medical.parquet"


@given(st.lists(texts, max_size=30), st.integers(1, 3))
@FEW
def test_one_member_partition_is_every_non_blank_id(values, n_chunks):
    cut = [len(values) * i // n_chunks for i in range(n_chunks + 1)]
    col = pa.chunked_array(
        [values[a:b] for a, b in zip(cut[:-1], cut[1:], strict=True)], pa.string()
    )
    hashed = partitions.hash_parts(partitions.string_hashes(col), 1)
    assert partitions.member_parts(col, 1).tolist() == hashed.tolist()
    ints = pa.chunked_array([[None if v is None else len(v) for v in values]], pa.int64())
    want = np.where(pc.is_null(ints).to_numpy(zero_copy_only=False), -1, 0)
    assert partitions.member_parts(ints, 1).tolist() == want.tolist()


def _counting_hashes(monkeypatch) -> list:
    calls = []
    real = partitions.string_hashes

    def counted(col):
        calls.append(len(col))
        return real(col)

    monkeypatch.setattr(partitions, "string_hashes", counted)
    return calls


def test_one_partition_run_hashes_claim_ids_once_and_scores_alike(book, monkeypatch):
    """One member and one claim-id partition: no batch hashes member or claim ids (claim-id
    matching hashes them once); the scores and audit are those of a run over several
    partitions of each."""
    ph, md = book
    kw = dict(as_of="2025-12-31", all_members=True)
    several = StreamOptions(batch_rows=997, partitions=3, claim_partitions=2, min_partition_rows=1)
    want = rxrisk.score(ph, md, stream=several, **kw)
    assert want.audit["pharmacy"]["buckets"]["reversed"] > 0
    assert want.audit["pharmacy"]["buckets"]["duplicate"] > 0
    calls = _counting_hashes(monkeypatch)
    one = StreamOptions(batch_rows=997, partitions=1, claim_partitions=1)
    got = rxrisk.score(ph, md, stream=one, **kw)
    assert_same(got, want)
    assert len(calls) == 1  # match_claims, on the one claim-id partition


def test_blank_claim_ids_in_one_partition_match_nothing(ndcs):
    """Keys of blank claim ids kept in the one claim-id partition are left out of matching,
    as when hashing dropped them."""
    import datetime as dt

    day = dt.date(2025, 3, 1)
    table = pa.table(
        {
            "member_id": ["A", "A", "A", "A"],
            "fill_date": [day] * 4,
            "ndc": [ndcs["oxy30"]] * 4,
            "quantity": [30.0] * 4,
            "days_supply": [30] * 4,
            "claim_id": ["  ", "  ", None, "c1"],
            "claim_status": ["paid", "reversed", "reversed", "paid"],
        }
    )
    kw = dict(as_of="2025-12-31")
    want = rxrisk.score(table, **kw)
    for claim_partitions in (1, 2):
        opts = StreamOptions(batch_rows=2, claim_partitions=claim_partitions, min_partition_rows=1)
        assert_same(rxrisk.score(table, stream=opts, **kw), want)


@given(
    st.lists(
        st.lists(
            st.tuples(
                # texts holding the separators must not share a key with another pair
                st.sampled_from(["ICD10CM", "PROC", "REV", "POS", "ICD10CM\x00F11", "ICD10CM:2"]),
                st.sampled_from(
                    [
                        "F11.20",
                        "F1120",
                        "T40.1X1A",
                        "0450",
                        "450",
                        "23",
                        "99284",
                        "G0299",
                        "C50.9",
                        " ",
                        "F11\x00X",
                        "X",
                        "F11:X",
                        "2:F11",
                    ]
                ),
            ),
            max_size=25,
        ),
        min_size=1,
        max_size=4,
    )
)
@FEW
def test_remembered_codes_classify_as_the_code_sets_each_pair_once(batches):
    codesets = load_config().codesets
    classified = []

    class Counting:
        def classify(self, space, code):
            classified.extend(zip(space.to_pylist(), code.to_pylist(), strict=True))
            return codesets.classify(space, code)

    remembered = validate.RememberedCodes(Counting())
    for pairs in batches:
        space = pa.array([s for s, _ in pairs], pa.string())
        code = pa.array([c for _, c in pairs], pa.string())
        got = remembered.classify(space, code)
        assert got.dtype == np.uint8
        assert got.tolist() == codesets.classify(space, code).tolist()
    assert sorted(classified) == sorted({p for pairs in batches for p in pairs})


def _ndc_texts():
    """Raw NDC texts: the reference's, their hyphenated and spaced forms, valid ones not in
    it, and texts that are rejected (empty, blank, garbage, null)."""
    ref = DrugTable.from_reference(load_config().reference).ndc.to_pylist()[:3]
    forms = [*ref, f"{ref[0][:5]}-{ref[0][5:9]}-{ref[0][9:]}", f" {ref[1]} ", "00000000000"]
    forms += ["12345-678-90", "1234-5678-90", "", " ", "abc", "1234567890123", None]
    return st.sampled_from(forms)


@given(
    batches=st.lists(st.lists(_ndc_texts(), max_size=20), min_size=1, max_size=4),
    dictionary=st.booleans(),
    most=st.integers(1, 40),
)
@FEW
def test_remembered_ndcs_look_up_as_each_batch_alone(batches, dictionary, most):
    """The NDC outcomes remembered across batches are those of each batch alone, value by value,
    whether the column is text or a dictionary and however few texts may be kept."""
    reference = DrugTable.from_reference(load_config().reference).ndc
    remembered = validate.RememberedNdcs(reference)
    with mock.patch.object(validate, "MAX_REMEMBERED_NDCS", most):
        for texts in batches:
            col = pa.chunked_array([pa.array(texts, pa.string())])
            if dictionary:
                col = col.dictionary_encode()
            ref, codes, norm = validate._ndc_lookup(col, reference, remembered)
            ref0, codes0, norm0 = validate._ndc_lookup(col, reference)
            assert ref.tolist() == ref0.tolist() and codes.tolist() == codes0.tolist()
            assert norm.to_pylist() == norm0.to_pylist()
            assert remembered.full or len(remembered._texts) <= most
    distinct = {t for texts in batches for t in texts if t is not None}  # nulls: no text
    assert remembered.full == (
        len(distinct) > most
    )  # never kept past the bound, nor given up early


def test_streamed_ndc_texts_are_worked_out_once(book, monkeypatch):
    """Batches repeat the same NDC texts: each distinct text is normalised and looked up in the
    reference once per run, however many batches hold it."""
    ph, md = book
    seen = []
    real = validate._ndc_outcome

    def counted(texts, reference_ndc):
        seen.extend(texts.to_pylist())
        return real(texts, reference_ndc)

    monkeypatch.setattr(validate, "_ndc_outcome", counted)
    opts = StreamOptions(batch_rows=500)
    book_ = ingest_stream(ph, md, load_config(), options=opts, clock=Clock())
    book_.close()
    assert len(seen) > 100 and len(seen) == len(set(seen))
    assert pq.read_metadata(ph).num_rows > 2 * 500  # several batches


def test_remembered_codes_never_mix_up_two_pairs():
    """Whatever the texts hold (separators, NUL), two different pairs never share a key."""

    class Exact:  # classifies one pair only
        def classify(self, space, code):
            pairs = zip(space.to_pylist(), code.to_pylist(), strict=True)
            return np.array([p == ("A", "B\x00C") for p in pairs], np.uint8)

    remembered = validate.RememberedCodes(Exact())
    for order in ([0, 1], [1, 0]):
        pairs = [("A", "B\x00C"), ("A\x00B", "C"), ("A:1", "B"), ("A", "1:B")]
        pairs = [pairs[i] for i in order] + pairs[2:]
        space = pa.array([p[0] for p in pairs], pa.string())
        code = pa.array([p[1] for p in pairs], pa.string())
        got = remembered.classify(space, code)
        assert got.tolist() == Exact().classify(space, code).tolist()


def test_streamed_medical_codes_are_classified_once(book, monkeypatch):
    """Batches repeat the same codes: each (code space, code) pair reaches the code-set
    patterns once per run, however many batches hold it."""
    ph, md = book
    cfg = load_config()
    seen = []
    real = type(cfg.codesets).classify

    def counted(self, space, code):
        seen.extend(zip(space.to_pylist(), code.to_pylist(), strict=True))
        return real(self, space, code)

    monkeypatch.setattr(type(cfg.codesets), "classify", counted)
    opts = StreamOptions(batch_rows=500)
    book_ = ingest_stream(ph, md, cfg, options=opts, clock=Clock())
    book_.close()
    assert seen and len(seen) == len(set(seen))


columns = st.fixed_dictionaries(
    {
        "s": st.lists(texts, min_size=12, max_size=12),
        "f": st.lists(st.one_of(st.none(), st.floats(allow_nan=True)), min_size=12, max_size=12),
        "d": st.lists(st.sampled_from([None, "x", "y"]), min_size=12, max_size=12),
    }
)


@given(columns, st.lists(st.booleans(), min_size=12, max_size=12))
@FEW
def test_keep_rows_takes_single_chunk_columns_as_a_filter_would(cols, mask):
    data = {
        "s": pa.chunked_array([pa.array(cols["s"], pa.string())]),
        "f": pa.chunked_array([pa.array(cols["f"], pa.float64())]),
        "d": pa.chunked_array([pa.array(cols["d"], pa.string()).dictionary_encode()]),
        "t": pa.chunked_array([pa.array([None, 1] * 6, pa.date32())]),
    }
    keep = np.array(mask)
    want = pa.table(data).filter(pa.array(keep))
    got = keep_rows(data, keep)
    for name in data:
        assert got[name].type == want.column(name).type
        assert repr(got[name].to_pylist()) == repr(want.column(name).to_pylist())
    several = {name: pa.chunked_array([c.chunk(0)[:5], c.chunk(0)[5:]]) for name, c in data.items()}
    split = keep_rows(several, keep)
    assert all(repr(split[n].to_pylist()) == repr(want.column(n).to_pylist()) for n in data)


def test_streaming_reads_claim_status_as_text_unless_a_quarantine_is_kept(book):
    ph, _ = book
    plain = open_batches(
        ph, label="pharmacy", batch_rows=1000, dictionary_columns=stream.STREAM_DICTIONARY_COLUMNS
    )
    t = next(iter(plain.batches))
    assert t.column("claim_status").type == pa.string()
    assert pa.types.is_dictionary(t.column("ndc").type)
    assert "claim_status" in sources.DICTIONARY_COLUMNS
    default = next(iter(open_batches(ph, label="pharmacy", batch_rows=1000).batches))
    assert pa.types.is_dictionary(default.column("claim_status").type)
    kw = dict(as_of="2025-12-31", quarantine=True)
    opts = StreamOptions(batch_rows=997, partitions=2, min_partition_rows=1)
    assert_same(rxrisk.score(ph, stream=opts, **kw), rxrisk.score(ph, **kw))
