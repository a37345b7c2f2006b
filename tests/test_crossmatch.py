"""RAVE × APOGEE cross-match, cuts and split (ravecnn_utils.crossmatch) on small hand-made tables,
plus one run on the simulated smoke survey."""

import re

import numpy as np
import pytest
from astropy import units as u
from astropy.table import MaskedColumn, Table

from ravecnn_utils import crossmatch as cm
from ravecnn_utils import splits
from ravecnn_utils.apogee import APOGEE_COLUMNS
from ravecnn_utils.labels import LABELS
from ravecnn_utils.simulation.catalogues import twomass_id
from ravecnn_utils.survey import FILES

GOOD = {"teff": 4800.0, "logg": 2.5, "m_h": -0.2, "fe_h": -0.25, "alpha_m": 0.1, "si_fe": 0.05,
        "al_fe": 0.1, "mg_fe": 0.1, "ni_fe": 0.0}
GOOD_ERR = {"teff": 60.0, "logg": 0.05, "m_h": 0.02, "fe_h": 0.02, "alpha_m": 0.02, "si_fe": 0.03,
            "al_fe": 0.05, "mg_fe": 0.03, "ni_fe": 0.03}
ARCSEC = 1 / 3600


def _apogee(ra, dec, ids=None, snr=None, extratarg=None, labels=None):
    """allStar-like table as read_allstar returns it (labels masked where missing)."""
    n = len(ra)
    t = Table({"APOGEE_ID": twomass_id(np.asarray(ra), np.asarray(dec)) if ids is None else ids,
               "RA": np.asarray(ra, float) * u.deg, "DEC": np.asarray(dec, float) * u.deg,
               "SNR": np.full(n, 150.0) if snr is None else np.asarray(snr, float),
               "STARFLAG": np.zeros(n, np.int64), "ASPCAPFLAG": np.zeros(n, np.int64),
               "EXTRATARG": np.zeros(n, np.int32) if extratarg is None else np.asarray(extratarg, np.int32),
               "FIELD": np.full(n, "F1")})
    for name, col in APOGEE_COLUMNS.items():
        value = np.full(n, GOOD[name]) if labels is None else np.asarray(labels[name], float)
        t[col] = MaskedColumn(value, mask=~np.isfinite(value))
        t[f"{col}_ERR"] = MaskedColumn(np.full(n, GOOD_ERR[name]), mask=~np.isfinite(value))
    return t


def _rave(ra, dec, id_2mass):
    n = len(ra)
    ids = MaskedColumn([("" if x is None else x) for x in id_2mass], mask=[x is None for x in id_2mass])
    return Table({"rave_obs_id": [f"20040403_1042m11_{i:03d}" for i in range(n)],
                  "ra_input": np.asarray(ra, float) * u.deg, "dec_input": np.asarray(dec, float) * u.deg,
                  "snr_med_sparv": np.full(n, 50.0), "id_2mass": ids, "field": np.full(n, "1042m11")})


# ------------------------------------------------------------------ ids
def test_normalise_2mass_variants():
    ids = MaskedColumn(["2M00424429+4116090", "J00424429+4116090", "00424429+4116090", "  ",
                        "2MASS J00424429+4116090", " 2M00424429+4116090 ", "whatever"],
                       mask=[0, 0, 0, 0, 0, 0, 1])
    out = cm.normalise_2mass(ids)
    assert out.dtype.kind == "U"
    assert out.tolist() == ["00424429+4116090"] * 3 + [""] + ["00424429+4116090"] * 2 + [""]
    assert cm.normalise_2mass("J00424429+4116090") == "00424429+4116090"
    assert cm.normalise_2mass([None, b"2M00424429+4116090"]).tolist() == ["", "00424429+4116090"]
    # ids that are not 2MASS designations are left alone
    assert cm.normalise_2mass(["AP17445959-2917040"]).tolist() == ["AP17445959-2917040"]


def test_deduplicate_apogee_extratarg_then_snr():
    ids = ["2M00000001+0000001", "2M00000001+0000001", "2M00000002+0000002", "2M00000002+0000002",
           "2M00000003+0000003", "2M00000004+0000004"]
    # star 1: the EXTRATARG bit-4 row goes even though its SNR is higher; star 2: lower SNR goes;
    # star 3: bit 3 is not the duplicate bit; star 4 alone
    t = _apogee(np.arange(6.0), np.zeros(6), ids=ids, snr=[300, 100, 100, 200, 80, 90],
                extratarg=[1 << 4, 0, 0, 0, 1 << 3, 0])
    out, n_removed = cm.deduplicate_apogee(t)
    assert n_removed == 2
    assert out["APOGEE_ID"].tolist() == [ids[1], ids[3], ids[4], ids[5]]
    assert out["SNR"].tolist() == [100, 200, 80, 90]
    assert out.meta["deduplicate"] == {"extratarg_bit4": 1, "lower_snr": 1}
    assert len(t) == 6  # input untouched


# ------------------------------------------------------------------ match
def _match_case():
    ra = np.array([10.0, 10.1, 10.2, 10.3, 10.4])
    dec = np.full(5, -30.0)
    apogee = _apogee(ra, dec)
    ids = [str(x) for x in apogee["APOGEE_ID"]]
    rave = _rave(
        [10.0, 10.1, 10.2, 10.3, 10.4, 50.0, 10.0],
        [-30.0, -30.0, -30.0 + 0.5 * ARCSEC, -30.0 + 3 * ARCSEC, -30.0 + 0.2 * ARCSEC, 10.0, -30.0],
        [ids[0],                 # APOGEE style id
         "J" + ids[1][2:],       # 2MASS "J" style id
         "",                     # no id, 0.5" from star 2: sky match
         None,                   # masked id, 3" from star 3: beyond 1"
         "2M99999999+9999999",   # id APOGEE lacks, 0.2" from star 4: sky match
         "",                     # nowhere near anything
         ids[0][2:]])            # repeat observation of star 0, bare id
    return rave, apogee


def test_match_by_id_then_sky():
    rave, apogee = _match_case()
    pairs = cm.match(rave, apogee, radius_arcsec=1.0)
    assert pairs.colnames == ["rave_index", "apogee_index", "method", "separation_arcsec"]
    assert pairs["rave_index"].tolist() == [0, 1, 2, 4, 6]
    assert pairs["apogee_index"].tolist() == [0, 1, 2, 4, 0]
    assert pairs["method"].tolist() == ["2mass", "2mass", "sky", "sky", "2mass"]
    assert pairs["separation_arcsec"].unit == u.arcsec
    np.testing.assert_allclose(pairs["separation_arcsec"], [0, 0, 0.5, 0.2, 0], atol=1e-6)
    assert (pairs.meta["n_2mass"], pairs.meta["n_sky"], pairs.meta["radius_arcsec"]) == (3, 2, 1.0)


def test_match_radius():
    rave, apogee = _match_case()
    pairs = cm.match(rave, apogee, radius_arcsec=5.0)
    assert 3 in pairs["rave_index"].tolist()
    row = pairs[pairs["rave_index"] == 3][0]
    assert row["method"] == "sky" and row["apogee_index"] == 3
    assert row["separation_arcsec"] == pytest.approx(3.0, abs=1e-6)
    tight = cm.match(rave, apogee, radius_arcsec=0.3)
    assert 2 not in tight["rave_index"].tolist() and 4 in tight["rave_index"].tolist()


def test_match_nothing_names_radius():
    rave, apogee = _match_case()
    far = _rave([200.0, 201.0], [40.0, 41.0], ["", None])
    with pytest.raises(ValueError, match=r"no RAVE observation matched.*radius_arcsec=0\.7"):
        cm.match(far, apogee, radius_arcsec=0.7)


def test_match_needs_deduplicated_apogee():
    rave, apogee = _match_case()
    apogee["APOGEE_ID"][1] = apogee["APOGEE_ID"][0]
    with pytest.raises(ValueError, match="deduplicate_apogee"):
        cm.match(rave, apogee)


def test_join_matches_columns():
    rave, apogee = _match_case()
    apogee["NI_FE"] = MaskedColumn(np.array([0.0, np.nan, 0.1, 0.1, 0.1]))  # NaN, not yet masked
    pairs = cm.match(rave, apogee)
    joined = cm.join_matches(rave, apogee, pairs)
    assert len(joined) == len(pairs)
    assert joined.colnames[: len(rave.colnames)] == rave.colnames
    for name in ("apogee_id", "ra", "dec", "snr", "starflag", "aspcapflag", "extratarg", "apogee_field",
                 *LABELS, *(f"{n}_err" for n in LABELS), "method", "separation_arcsec"):
        assert name in joined.colnames, name
    assert not any(c.isupper() for c in "".join(joined.colnames))
    assert isinstance(joined["teff"], MaskedColumn) and joined["teff"].dtype == np.float64
    assert joined["ni_fe"].mask.tolist() == [False, True, False, False, False]
    assert joined["rave_obs_id"].tolist() == [rave["rave_obs_id"][i] for i in pairs["rave_index"]]
    assert joined["apogee_id"].tolist() == [apogee["APOGEE_ID"][i] for i in pairs["apogee_index"]]
    assert joined["field"][0] == "1042m11" and joined["apogee_field"][0] == "F1"


# ------------------------------------------------------------------ cuts
def _joined(n=14):
    """Joined per-observation table with one crafted defect per row (see the comments)."""
    t = Table({"rave_obs_id": [f"obs{i:02d}" for i in range(n)],
               "snr_med_sparv": np.full(n, 50.0),
               "apogee_id": [f"2M0000000{i % 10}+00000{i:02d}" for i in range(n)],
               "snr": np.full(n, 150.0), "starflag": np.zeros(n, np.int64), "aspcapflag": np.zeros(n, np.int64)})
    for name in LABELS:
        t[name] = MaskedColumn(np.full(n, GOOD[name]), mask=np.zeros(n, bool))
        t[f"{name}_err"] = MaskedColumn(np.full(n, GOOD_ERR[name]), mask=np.zeros(n, bool))
    t["starflag"][2] = 1 << 3            # bad STARFLAG bit: removed
    t["starflag"][3] = 1 << 1            # harmless STARFLAG bit: kept
    t["aspcapflag"][4] = 1 << 23         # STAR_BAD: removed
    t["aspcapflag"][5] = 1 << 19         # M_H_BAD alone: kept
    t["snr"][6] = 50.0                   # low APOGEE SNR: removed
    t["snr_med_sparv"][7] = 5.0          # low RAVE SNR: removed
    t["logg"].mask[8] = True             # missing required label: removed
    t["teff_err"][9] = 200.0             # Teff error over 150 K: removed
    t["al_fe_err"][10] = 0.3             # [Al/Fe] error over 0.15: masked, kept
    t["ni_fe"].mask[11] = True           # missing [Ni/Fe]: stays masked, kept
    t["ni_fe_err"].mask[11] = True
    t["apogee_id"][12] = t["apogee_id"][13] = t["apogee_id"][0]  # repeats of star 0 ...
    t["snr_med_sparv"][12], t["snr_med_sparv"][13] = 80.0, 30.0   # ... row 12 is its best observation
    return t


def test_cutflow_removes_exactly_the_crafted_rows():
    t = _joined()
    kept, flow = cm.apply_cuts(t)
    assert flow.colnames == ["cut", "parameter", "removed", "remaining", "masked_values"]
    assert flow["cut"].tolist() == ["matched", "starflag", "aspcapflag", "apogee snr", "rave snr",
                                    "required labels", "required label errors", "label errors", "repeats"]
    assert flow["removed"].tolist() == [0, 1, 1, 1, 1, 1, 1, 0, 0]
    assert flow["remaining"].tolist() == [14, 13, 12, 11, 10, 9, 8, 8, 8]
    assert flow["masked_values"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0]
    assert all(isinstance(p, str) for p in flow["parameter"])
    params = dict(zip(flow["cut"], flow["parameter"]))
    assert params["starflag"] == "bits 0,3,4,18,22" and params["aspcapflag"] == "bit 23"
    assert params["apogee snr"] == ">= 70" and params["rave snr"] == ">= 10" and params["repeats"] == "keep"
    assert "teff <= 150 K" in params["required label errors"] and "al_fe <= 0.15" in params["label errors"]
    assert kept["rave_obs_id"].tolist() == [f"obs{i:02d}" for i in (0, 1, 3, 5, 10, 11, 12, 13)]
    row = dict(zip(kept["rave_obs_id"], range(len(kept))))
    assert kept["al_fe"].mask[row["obs10"]] and not kept["al_fe_err"].mask[row["obs10"]]
    assert kept["ni_fe"].mask[row["obs11"]]
    assert kept["al_fe"].mask.sum() == 1 and kept["ni_fe"].mask.sum() == 1
    assert not any(kept[name].mask.any() for name in LABELS if name not in ("al_fe", "ni_fe"))
    # the input is not modified
    assert len(t) == 14 and not t["al_fe"].mask.any()


def test_repeats_best_vs_keep():
    _, keep = cm.apply_cuts(_joined(), {"repeats": "keep"})
    kept, best = cm.apply_cuts(_joined(), {"repeats": "best"})
    assert keep[-1]["removed"] == 0 and keep[-1]["remaining"] == 8
    assert best[-1]["cut"] == "repeats" and best[-1]["parameter"] == "best"
    assert best[-1]["removed"] == 2 and best[-1]["remaining"] == 6
    assert "obs12" in kept["rave_obs_id"] and "obs00" not in kept["rave_obs_id"] and "obs13" not in kept["rave_obs_id"]
    assert len(np.unique(kept["apogee_id"])) == len(kept)


def test_cuts_options_and_errors():
    kept, flow = cm.apply_cuts(_joined(), {"apogee_snr_min": 40, "rave_snr_min": None})
    assert dict(zip(flow["cut"], flow["removed"]))["apogee snr"] == 0
    assert dict(zip(flow["cut"], flow["parameter"]))["rave snr"] == "none"
    with pytest.raises(ValueError, match="unknown cut"):
        cm.apply_cuts(_joined(), {"snr_min": 3})
    with pytest.raises(ValueError, match="repeats"):
        cm.apply_cuts(_joined(), {"repeats": "all"})
    with pytest.raises(ValueError, match="starflag"):
        cm.apply_cuts(_joined().copy()[["rave_obs_id"]])


# ------------------------------------------------------------------ split
def _stars_table(n_rows=1000, seed=1):
    """~800 stars (a quarter observed twice), all four strata, plus a stratum of exactly 3 stars."""
    rng = np.random.default_rng(seed)
    n_stars = 800
    star = np.sort(np.concatenate([np.arange(n_stars), rng.choice(n_stars, n_rows - n_stars, replace=False)]))
    kind = rng.choice([1, 2, 3], n_stars, p=[0.2, 0.05, 0.75])  # dwarf, hot, main
    kind[:3] = 0  # exactly three metal-poor stars
    m_h = np.where(kind == 0, -1.5, -0.1)
    logg = np.where(kind == 1, 4.4, 2.5)
    teff = np.where(kind == 2, 6500.0, 4800.0)
    return Table({"apogee_id": [f"2M{s:08d}+0000000" for s in star], "teff": teff[star],
                  "logg": logg[star], "m_h": m_h[star]})


def test_stratum():
    t = Table({"m_h": MaskedColumn([-1.5, 0.0, 0.0, 0.0, -2.0, 0.0], mask=[0, 0, 0, 0, 0, 1]),
               "logg": [2.0, 4.5, 2.0, 2.0, 4.5, 2.0], "teff": [4500, 5500, 6500, 4800, 6500, 4800]})
    assert splits.stratum(t).tolist() == ["metal_poor", "dwarf", "hot", "main", "metal_poor", "main"]


def test_split_deterministic_grouped_stratified():
    t = _stars_table()
    part = splits.split(t)
    assert part.shape == (len(t),) and set(part) == set(splits.PARTS)
    assert np.array_equal(part, splits.split(t, seed=42))
    assert not np.array_equal(part, splits.split(t, seed=7))
    # all rows of a star in one part
    for star in np.unique(t["apogee_id"]):
        assert len(set(part[t["apogee_id"] == star])) == 1
    # every stratum (the metal-poor one has exactly 3 stars) in every part
    strata = splits.stratum(t)
    for name in np.unique(strata):
        assert set(part[strata == name]) == set(splits.PARTS), name
    assert len(np.unique(t["apogee_id"][strata == "metal_poor"])) == 3
    # fractions of rows within 3 %
    for name, f in zip(splits.PARTS, (0.8, 0.1, 0.1)):
        assert abs(np.mean(part == name) - f) < 0.03, name
    other = splits.split(t, fractions=(0.6, 0.2, 0.2), seed=3)
    for name, f in zip(splits.PARTS, (0.6, 0.2, 0.2)):
        assert abs(np.mean(other == name) - f) < 0.03, name
    # independent of row order
    perm = np.random.default_rng(0).permutation(len(t))
    assert np.array_equal(splits.split(t[perm]), part[perm])


def test_split_without_groups_and_small_strata():
    t = Table({"apogee_id": ["a", "b"], "teff": [4800.0, 4800.0], "logg": [2.5, 2.5], "m_h": [0.0, 0.0]})
    assert splits.split(t).tolist() == ["train", "train"]  # too few stars for three parts
    t = _stars_table()
    part = splits.split(t, group=None)
    assert abs(np.mean(part == "train") - 0.8) < 0.01


@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.2), (0.9, 0.1), (1.0, 0.0, 0.0), (0.8, -0.1, 0.3)])
def test_split_bad_fractions(fractions):
    with pytest.raises(ValueError, match=r"fractions.*" + re.escape(str(tuple(fractions)))):
        splits.split(_stars_table(), fractions=fractions)


# ------------------------------------------------------------------ the simulated survey
def test_smoke_survey_end_to_end(smoke_survey):
    rave = Table.read(smoke_survey / FILES["catalogue"], hdu=1)
    allstar = Table.read(smoke_survey / FILES["allstar"], hdu=1)
    for col in APOGEE_COLUMNS.values():
        for name in (col, f"{col}_ERR"):
            value = np.asarray(allstar[name], float)
            allstar[name] = MaskedColumn(value, mask=~np.isfinite(value))
    truth_stars = Table.read(smoke_survey / FILES["truth"], hdu="STARS")
    truth_obs = Table.read(smoke_survey / FILES["truth"], hdu="OBSERVATIONS")
    kind = dict(zip(truth_stars["id_2mass"], truth_stars["kind"]))
    true_star = dict(zip(truth_obs["rave_obs_id"], truth_obs["id_2mass"]))
    n_cross = int(np.sum(truth_stars["kind"] == "crossmatch"))

    apogee, n_dup = cm.deduplicate_apogee(allstar)
    assert n_dup > 0 and len(np.unique(apogee["APOGEE_ID"])) == len(apogee)
    pairs = cm.match(rave, apogee)
    joined = cm.join_matches(rave, apogee, pairs)
    # every matched pair is the right star, and a cross-match star
    for obs_id, apogee_id in zip(joined["rave_obs_id"], joined["apogee_id"]):
        assert true_star[obs_id] == apogee_id
        assert kind[apogee_id] == "crossmatch"
    recovered = np.unique(joined["apogee_id"])
    assert len(recovered) > 0.8 * n_cross
    # the RAVE rows without a 2MASS id are found on the sky
    blank = np.flatnonzero(cm.normalise_2mass(rave["id_2mass"]) == "")
    blank_cross = [i for i in blank if kind[true_star[rave["rave_obs_id"][i]]] == "crossmatch"]
    assert len(blank_cross) >= 1
    sky = pairs[pairs["method"] == "sky"]
    assert set(blank_cross) <= set(sky["rave_index"].tolist())
    assert np.all(sky["separation_arcsec"] < 1.0)

    kept, flow = cm.apply_cuts(joined)
    assert flow["remaining"][0] == len(joined) and flow["remaining"][-1] == len(kept)
    assert np.all(np.diff(flow["remaining"]) <= 0)
    assert len(np.unique(kept["apogee_id"])) > 0.5 * n_cross
    assert np.all(kept["snr"] >= 70) and not np.any(kept["teff"].mask)
    part = splits.split(kept)
    assert set(part) == set(splits.PARTS)
    for star in np.unique(kept["apogee_id"]):
        assert len(set(part[kept["apogee_id"] == star])) == 1


def test_split_counts_table():
    """split_counts tallies rows per part and stratum, with a total column."""
    from astropy.table import Table

    from ravecnn_utils.splits import STRATA, split_counts

    t = Table({"split": ["train", "train", "test", "validation"], "stratum": ["dwarf", "main", "main", "hot"]})
    counts = split_counts(t)
    assert list(counts["part"]) == ["train", "validation", "test"]
    assert list(counts["all"]) == [2, 1, 1] and counts.colnames == ["part", *STRATA, "all"]
    assert counts["dwarf"][0] == 1 and counts["hot"][1] == 1 and counts["main"][2] == 1
