"""From the search log to a ranking signal: which results searchers open for a query, corrected for position bias.

People open the first results far more often than the fifth whatever they are
worth, so a result's click rate mostly says where it was shown.  ``learn``
reads the log (``search_log``, ``search_impressions``, ``search_clicks``, in the
private database beside the catalog: ``private.py``) and
fits a **position-based click model** (Craswell et al. 2008; Chuklin, Markov &
de Rijke, *Click Models for Web Search*, 2015):

    P(click | query q, item d at position k) = θ_k · γ_qd

θ_k is the chance that a searcher looks at position k at all (the examination
propensity, shared by every query) and γ_qd the chance they open d for q once
they see it (its attractiveness).  θ is fitted by expectation-maximisation
together with γ over the log, aggregated into (q, d, k, shown, clicked) groups
so a million log rows cost one SQL aggregation and a few hundred numpy passes
(5 s here, benchmarks/clicks.py --scale).  This is the EM of
Wang et al. (WSDM 2018, "Position bias estimation for unbiased learning to
rank in personal search") with the closed-form M-step: their regression M-step
shares γ across items through features, and here relevance is learned per
(query, item) pair.

Why EM and not a fixed 1/k^η curve: the curve differs between a grid of
previews and a list of abstracts, and EM measures it.  θ is identifiable only
from pairs shown at more than one position (a pair seen at one position fits
any θ, and EM leaves θ where that pair found it).  Rankings do move — after
each ``learn``, as the catalog grows, between tabs and pages — and each θ_k
starts from 1/k with ``PROPENSITY_PRIOR`` pseudo-impressions, so with little
movement in the log the propensities stay near that prior and move as far as
the evidence carries them.

Once θ is known, each pair's attractiveness is its clicks over the
examinations it is expected to have had, Σ θ_k over its impressions (as
"clicks over expected clicks", Zhang & Jones 2007), with a Beta prior centred
on the log's mean attractiveness that weighs as much as
``PRIOR_EXAMINATIONS`` examinations, so one click from one impression is a
hint, not certainty.  The stored ``boost`` is that attractiveness minus the
mean, clipped to ±``BOOST_CAP``: the engine adds at most ``BOOST_CAP`` times
its click weight, however many clicks there are.

Against forged or repeated clicks (besides the beacon's own checks in
web/clicks.py): everything one signed-in actor does for one (query, item) in
one day counts once, as one impression at the best position it was shown and
at most one click; anonymous searches count one each.  ``learn`` recomputes
``click_signals`` from the whole log every time, so running it twice gives
the same table.

Anonymous clicks are bounded only by the beacon's checks and the cap;
``signed_in_only`` leaves them out.  ``learn(db, debias=False)`` is the naive variant (θ = 1: plain smoothed click
rates), kept to measure what the correction is worth (benchmarks/clicks.py).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import numpy as np
import sqlite_utils

from ..private import open_private

# Positions after this one share one propensity: few searchers scroll that far, and their clicks are sparse.
MAX_POSITION = 50
# θ_k starts at 1/k and counts as this many impressions at each position (see the module docstring).
PROPENSITY_PRIOR = 20.0
# γ's prior weighs as much as this many examined impressions at the log's mean attractiveness.
PRIOR_EXAMINATIONS = 10.0
# The learned boost is clipped to ±BOOST_CAP (attractiveness minus the mean, a probability difference).
BOOST_CAP = 0.5
# Boosts smaller than this change no ranking worth storing.
MIN_BOOST = 0.005
EM_ITERATIONS = 200
EM_TOLERANCE = 1e-6


@dataclass
class LearnReport:
    searches: int = 0
    impressions: int = 0  # impressions logged
    clicks: int = 0  # clicks logged
    counted_impressions: int = 0  # after counting each actor's (query, item) once a day
    counted_clicks: int = 0
    queries: int = 0  # distinct query keys with at least one click
    pairs: int = 0  # (query, item) pairs written to click_signals
    boosted: int = 0  # of which with a positive boost
    propensities: list[float] = field(default_factory=list)  # θ_1, θ_2, … (1.0 everywhere when not debiased)
    mean_attractiveness: float = 0.0
    iterations: int = 0
    debiased: bool = True
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


# One row per (query, item, position): how many times it was shown and opened, after counting each actor's
# (query, item) once a day at the best position it had.  Anonymous searches are each their own "actor".
_GROUPS_SQL = """
with shown as (
    select l.query_key, i.item_type, i.item_id,
           coalesce('actor:' || l.actor, 'search:' || l.id) as who, substr(l.created_at, 1, 10) as day,
           min(i.position) as position,
           max(exists(select 1 from search_clicks c where c.search_id = i.search_id and c.position = i.position))
               as clicked
    from search_impressions i
    join search_log l on l.id = i.search_id
    where l.query_key is not null and l.query_key != '' and (l.actor is not null or not :signed_in_only)
    group by l.query_key, i.item_type, i.item_id, who, day
)
select query_key, item_type, item_id, min(position, :max_position) as position, count(*) as shown,
       sum(clicked) as clicked
from shown
group by query_key, item_type, item_id, min(position, :max_position)
"""


def learn(
    db: sqlite_utils.Database,
    *,
    debias: bool = True,
    signed_in_only: bool = False,
    now: dt.datetime | None = None,
) -> LearnReport:
    """Recompute ``click_signals`` from the whole search log; returns what was learned.  ``signed_in_only``
    leaves anonymous searches out, for a catalog that should trust only people who sign in."""
    started = time.perf_counter()
    report = LearnReport(debiased=debias)
    log = open_private(db)  # the log and the signals live beside the catalog, where only staff read them
    if log is None:
        raise ValueError("a catalog in memory keeps no search log to learn from")
    try:
        report.searches = log.execute("select count(*) from search_log").fetchone()[0]
        report.impressions = log.execute("select count(*) from search_impressions").fetchone()[0]
        report.clicks = log.execute("select count(*) from search_clicks").fetchone()[0]
        rows = log.execute(_GROUPS_SQL, {"max_position": MAX_POSITION, "signed_in_only": signed_in_only}).fetchall()
        signals: list[dict] = []
        if rows:
            signals = _fit(rows, debias, report)
        updated_at = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
        with log.atomic():  # searches see the old signals or the new, never half (insert_all commits a plain `with`)
            log.execute("delete from click_signals")
            log["click_signals"].insert_all(
                ({**signal, "updated_at": updated_at} for signal in signals), batch_size=5000
            )
    finally:
        log.close()
    report.pairs = len(signals)
    report.boosted = sum(1 for signal in signals if signal["boost"] > 0)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _fit(rows: list[tuple], debias: bool, report: LearnReport) -> list[dict]:
    keys: dict[tuple[str, str, str], int] = {}
    pair = np.empty(len(rows), dtype=np.int64)
    for index, (query_key, item_type, item_id, *_) in enumerate(rows):
        pair[index] = keys.setdefault((query_key, item_type, item_id), len(keys))
    position = np.array([row[3] for row in rows], dtype=np.int64) - 1  # 0-based
    shown = np.array([row[4] for row in rows], dtype=np.float64)
    clicked = np.array([row[5] for row in rows], dtype=np.float64)
    report.counted_impressions, report.counted_clicks = int(shown.sum()), int(clicked.sum())
    propensity = np.ones(MAX_POSITION)
    if debias:
        propensity, report.iterations = examination_propensities(pair, position, shown, clicked)
    pair_clicks = np.bincount(pair, clicked, minlength=len(keys))
    pair_shown = np.bincount(pair, shown, minlength=len(keys))
    pair_examined = np.bincount(pair, shown * propensity[position], minlength=len(keys))
    mean = min(float(pair_clicks.sum() / pair_examined.sum()), 1.0)
    attractiveness = np.minimum(_smoothed(pair_clicks, pair_examined, mean), 1.0)
    report.propensities = [round(float(p), 4) for p in propensity[: position.max() + 1]]
    report.mean_attractiveness = round(float(mean), 4)
    boost = np.clip(attractiveness - mean, -BOOST_CAP, BOOST_CAP)
    report.queries = len({query_key for (query_key, _, _), index in keys.items() if pair_clicks[index] > 0})
    return [
        {
            "query_key": query_key,
            "item_type": item_type,
            "item_id": item_id,
            "clicks": int(pair_clicks[index]),
            "impressions": int(pair_shown[index]),
            "attractiveness": round(float(attractiveness[index]), 6),
            "boost": round(float(boost[index]), 6),
        }
        for (query_key, item_type, item_id), index in keys.items()
        if abs(boost[index]) >= MIN_BOOST
    ]


def _smoothed(clicks: np.ndarray, examinations: np.ndarray, mean: float) -> np.ndarray:
    """Posterior mean of a Beta prior at ``mean`` worth PRIOR_EXAMINATIONS examinations."""
    return (clicks + PRIOR_EXAMINATIONS * mean) / (examinations + PRIOR_EXAMINATIONS)


def examination_propensities(
    pair: np.ndarray, position: np.ndarray, shown: np.ndarray, clicked: np.ndarray
) -> tuple[np.ndarray, int]:
    """θ by EM over groups of (pair, 0-based position, shown, clicked); returns θ and the iterations used.

    E-step: a shown-but-not-opened result was either not looked at or looked at and passed over:
    P(looked | no click) = θ(1-γ)/(1-θγ), P(attractive | no click) = (1-θ)γ/(1-θγ); an opened one was both.
    M-step: θ_k and γ_qd are the expected shares, θ with its prior as pseudo-counts.  γ is left unsmoothed
    here: a prior pulling the many rarely-shown deep results towards the mean would make θ absorb the
    difference and fall too steeply.  The smoothing is applied once θ is known (``_fit``)."""
    pairs = int(pair.max()) + 1
    prior_propensity = 1.0 / np.arange(1, MAX_POSITION + 1)
    propensity = prior_propensity.copy()
    examined = np.bincount(pair, shown * propensity[position], minlength=pairs)
    attractiveness = np.clip(np.bincount(pair, clicked, minlength=pairs) / np.maximum(examined, 1e-12), 0.0, 1.0)
    not_clicked = shown - clicked
    shown_at = np.bincount(position, shown, minlength=MAX_POSITION)
    shown_pair = np.bincount(pair, shown, minlength=pairs)
    iterations = 0
    while iterations < EM_ITERATIONS:
        iterations += 1
        theta, gamma = propensity[position], attractiveness[pair]
        unseen_or_passed = np.maximum(1.0 - theta * gamma, 1e-12)
        looked = clicked + not_clicked * theta * (1.0 - gamma) / unseen_or_passed
        liked = clicked + not_clicked * (1.0 - theta) * gamma / unseen_or_passed
        looked_at = np.bincount(position, looked, minlength=MAX_POSITION)
        new_propensity = (looked_at + PROPENSITY_PRIOR * prior_propensity) / (shown_at + PROPENSITY_PRIOR)
        new_attractiveness = np.bincount(pair, liked, minlength=pairs) / shown_pair
        change = max(np.abs(new_propensity - propensity).max(), np.abs(new_attractiveness - attractiveness).max())
        propensity, attractiveness = new_propensity, new_attractiveness
        if change < EM_TOLERANCE:
            break
    return propensity, iterations
