"""Search across facilities: other scisearch instances asked over HTTP, their answers merged with this one's.

A facility lists other scisearch instances (a name and a base URL each) in the
``hub:`` block of its ``metadata.yml``.  A search that fans out (``facilities=all``
in the URL, or ``search_by_default: true``) asks every listed facility's
``/-/scisearch.json`` concurrently while its own catalogs are searched, and the
answers are merged by ``federation.search_catalogs_async`` exactly as several
local catalogs are: each facility is one more "catalog" whose engine happens to
be at the end of an HTTP request.  So the merge's rules hold across facilities
too: raw scores (BM25, cosine) are compared only where one ranker or one tagger
made them (``rankers`` in each answer), otherwise hits are interleaved by their
place in their own list.

What may go wrong with another facility never stops this one's answer: a dead
port, a refused connection, a timeout, a 500, an HTML error page, junk or JSON
of the wrong shape each become a ``Notice`` naming the facility and what went
wrong, that facility contributes nothing, and the rest is merged and shown.
Each facility has a deadline (``timeout_seconds``) covering every request made
to it in one search, so a slow facility delays a page by at most that much.

Only public results travel.  Requests to other facilities are anonymous: a
fresh client without cookies or credentials, whatever the visitor sent here,
so each facility answers with what it shows anyone.  And a fan-out never
forwards: every request it sends carries ``facilities=local`` and the
``X-Scisearch-Hub`` header, and an instance that receives either answers from
its own catalogs only, so two hubs that list each other cannot loop.

What comes back is checked before it is used (``parse_answer``): the shape of
``/-/scisearch.json`` (docs/search-api.md), every link resolved against the
facility's base URL and kept only if it stays under it (a result links to the
facility's own item page, never elsewhere), snippets trusted for ``<mark>``
only (the pages escape the rest, web/present.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import httpx

from ..config import ConfigError
from ..errors import BUSY, ScisearchError
from .federation import AsyncEngine, CatalogAnswer, CatalogHit, FederatedResults, search_catalogs_async
from .query import without_filter
from .results import SearchResults

__all__ = [
    "FORWARDED_HEADER",
    "Facility",
    "Hub",
    "FAN_OUT",
    "LOCAL_ONLY",
    "SCOPE_PARAMETER",
    "Notice",
    "askable",
    "RemoteHit",
    "hub_from_config",
    "parse_answer",
    "remote_engines",
    "search_with_facilities",
]

SCOPE_PARAMETER = "facilities"  # facilities=all: fan out; facilities=local: this instance only
LOCAL_ONLY = "local"
FAN_OUT = "all"
FORWARDED_HEADER = "X-Scisearch-Hub"  # sent on every fan-out request: "answer from your own catalogs only"
DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_TIMEOUT_SECONDS = 60.0
MAX_ANSWER_BYTES = 5_000_000  # a page of 100 hits is ~100 kB; more than this is not an answer
API_PATH = "-/scisearch.json"
_LINKS = ("url", "json_url", "similar_url", "preview_url")


@dataclass(frozen=True)
class Facility:
    """Another scisearch instance: its name (shown on its results) and the base URL it is served at."""

    name: str
    url: str  # ends with "/"
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def api_url(self) -> str:
        return urllib.parse.urljoin(self.url, API_PATH)


@dataclass
class Hub:
    """This instance's name among facilities and the facilities it searches with its own catalogs."""

    name: str = "here"
    facilities: list[Facility] = field(default_factory=list)
    search_by_default: bool = False

    def describe(self, payload: dict, notices: list[Notice]) -> None:
        """Add to a search's JSON (its ``as_dict``) which facilities answered, the notices, and each hit's
        facility (docs/search-api.md, *Other facilities*): the API and ``scisearch search --json`` alike."""
        failed = {notice.facility for notice in notices}
        payload["facilities"] = [{"name": self.name, "url": None, "answered": True}] + [
            {"name": facility.name, "url": facility.url, "answered": facility.name not in failed}
            for facility in self.facilities
        ]
        payload["notices"] = [notice.as_dict() for notice in notices]
        for hit in payload["hits"]:
            hit.setdefault("facility", self.name)
            hit.setdefault("facility_url", None)

    def fans_out(self, scope: str | None, forwarded: bool) -> bool:
        """Whether a search asks the other facilities: never for a forwarded request (no loops) or with
        ``facilities=local``; with ``facilities=all``, or by default where the hub says so."""
        scope = (scope or "").strip().lower()
        if forwarded or scope == LOCAL_ONLY or not self.facilities:
            return False
        return scope == FAN_OUT or self.search_by_default


def askable(facilities: list[Facility], local_names, notices: list[Notice]) -> list[Facility]:
    """Of these facilities, those that can be asked beside catalogs of ``local_names``: one named like a local
    catalog would be confused with it, so it is left out with a notice saying what to change."""
    kept = []
    for facility in facilities:
        if facility.name in local_names:
            problem = "has the name of a catalog served here; give it another name under 'hub: facilities:'"
            notices.append(Notice(facility.name, facility.url, problem + " in metadata.yml"))
        else:
            kept.append(facility)
    return kept


def hub_from_config(block: dict | None) -> Hub:
    """The ``hub:`` block of the plugin's config (metadata.yml), checked; no block is a hub of no facilities.

    hub:
      name: Molecular Foundry          # how this instance's own results are labelled (default "here")
      search_by_default: false         # true: every search fans out unless facilities=local
      timeout_seconds: 5               # per facility, for all its requests in one search
      facilities:
        - {name: West, url: "https://west.example.org/", timeout_seconds: 3}
    """
    if not block:
        return Hub()
    if not isinstance(block, dict):
        raise ConfigError("'hub' in the config must be a mapping with 'facilities' (a list of name and url)")
    default_timeout = _timeout(block.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS), "hub")
    entries = block.get("facilities") or []
    if not isinstance(entries, list):
        raise ConfigError("'hub: facilities:' must be a list of entries with a name and a url")
    facilities, names = [], set()
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("url"):
            raise ConfigError(
                f"facility {number} under 'hub: facilities:' needs a name and a url, e.g. "
                "{name: West, url: 'https://west.example.org/'}"
            )
        name, url = str(entry["name"]).strip(), str(entry["url"]).strip()
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(
                f"facility {name!r}: url {url!r} is not an http(s) address; give its base URL, "
                "e.g. 'https://west.example.org/'"
            )
        if name.lower() in names:
            raise ConfigError(f"two facilities under 'hub: facilities:' are called {name!r}: give each its own name")
        names.add(name.lower())
        timeout = _timeout(entry.get("timeout_seconds", default_timeout), f"facility {name!r}")
        facilities.append(Facility(name, url if url.endswith("/") else url + "/", timeout))
    return Hub(str(block.get("name") or "here"), facilities, bool(block.get("search_by_default", False)))


def _timeout(value, owner: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not 0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise ConfigError(
            f"{owner}: timeout_seconds must be a number of seconds above 0 and at most "
            f"{MAX_TIMEOUT_SECONDS:g} (got {value!r})"
        )
    return seconds


# -- What comes back ---------------------------------------------------------------------------------------


@dataclass
class Notice:
    """A facility that gave nothing (or less) to this search, and why, in a sentence."""

    facility: str
    url: str
    problem: str

    def as_dict(self) -> dict:
        return asdict(self)

    def sentence(self) -> str:
        return f"facility {self.facility} ({self.url}) {self.problem}; the results shown are from those that answered"


@dataclass
class RemoteHit(CatalogHit):
    """A hit from another facility: its ``database`` there and its links, absolute, on that facility."""

    facility: str = ""
    facility_url: str = ""
    remote_database: str | None = None
    links: dict = field(default_factory=dict)

    def public_dict(self) -> dict:
        """The hit as /-/scisearch.json gives it: its own facility's database name and absolute links."""
        data = self.as_dict()
        data["database"] = data.pop("remote_database")
        data.update(data.pop("links"))
        return data


class RemoteAnswerError(ScisearchError):
    """Another facility's answer cannot be used; the message says what was wrong with it."""

    kind = BUSY


def parse_answer(facility: Facility, status: int, content_type: str, body: bytes) -> CatalogAnswer:
    """A facility's ``/-/scisearch.json`` response as one engine page, or RemoteAnswerError saying why not."""
    if status != 200:
        said = _error_sentence(content_type, body)
        raise RemoteAnswerError(f"answered HTTP {status}" + (f" ({said})" if said else ""))
    if "json" not in content_type.lower():
        raise RemoteAnswerError(
            f"answered {content_type.split(';')[0] or 'something'} instead of JSON (is the url a scisearch instance?)"
        )
    if len(body) > MAX_ANSWER_BYTES:
        raise RemoteAnswerError(f"sent {len(body):,} bytes, more than an answer can be ({MAX_ANSWER_BYTES:,})")
    try:
        payload = json.loads(body)
    except ValueError:
        raise RemoteAnswerError("sent something that is not JSON") from None
    try:
        return _Shape(facility).answer(payload)
    except RemoteAnswerError as error:
        raise RemoteAnswerError(f"sent an answer of the wrong shape: {error.message}") from None


def _error_sentence(content_type: str, body: bytes) -> str:
    if "json" not in content_type.lower():
        return ""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    return str(error)[:200] if isinstance(error, str) else ""


# Facts the pages format as numbers (web/present.py): another facility's value that is not one is left out.
_NUMBER_FACTS = ("voltage_kv", "magnification", "pixel_size_nm", "camera_length_mm", "size_bytes")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _clean_facts(facts: dict) -> dict:
    """Another facility's facts as the pages can show them: plain values only, numbers where numbers belong."""
    clean = {}
    for name, value in facts.items():
        if name in _NUMBER_FACTS and value is not None and not _is_number(value):
            continue
        if value is None or isinstance(value, (str, bool)) or _is_number(value):
            clean[str(name)] = value[:500] if isinstance(value, str) else value
    return clean


def _is_tag(tag) -> bool:
    return isinstance(tag, dict) and isinstance(tag.get("tag"), str)


def _clean_tag(tag: dict) -> dict:
    score = tag.get("score")
    return {
        "tag": tag["tag"][:200],
        "source": str(tag.get("source") or "")[:100] or None,
        "score": float(score) if _is_number(score) else None,
        "status": str(tag.get("status") or "")[:20] or None,
    }


def _clean_proposal(proposal) -> dict | None:
    if not isinstance(proposal, dict) or not isinstance(proposal.get("id"), str):
        return None
    title = proposal.get("title")
    return {"id": proposal["id"][:200], "title": title[:500] if isinstance(title, str) else None}


class _Shape:
    """Checks of /-/scisearch.json's shape, each failure a sentence naming the field."""

    def __init__(self, facility: Facility):
        self.facility = facility

    def answer(self, payload) -> CatalogAnswer:
        data = self.mapping(payload, "the answer")
        if data.get("ok") is not True:
            raise RemoteAnswerError(
                '"ok" is not true' + (f" ({data['error'][:200]})" if isinstance(data.get("error"), str) else "")
            )
        hits = [self.hit(entry, f"hits[{number}]") for number, entry in enumerate(self.listing(data, "hits"))]
        messages = [str(message)[:300] for message in self.listing(data, "messages")]
        results = SearchResults(
            query=str(data.get("query") or ""),
            filters=self.mapping(data.get("filters") or {}, "filters"),
            item_type=data.get("item_type") if isinstance(data.get("item_type"), str) else None,
            page=self.whole(data.get("page"), "page"),
            per_page=self.whole(data.get("per_page"), "per_page"),
            total=self.whole(data.get("total"), "total"),
            counts={
                str(k): self.whole(v, f"counts.{k}")
                for k, v in self.mapping(data.get("counts") or {}, "counts").items()
            },
            hits=hits,
            facets=self.facets(data.get("facets") or {}),
            messages=messages,
            took_ms=self.number(data.get("took_ms") or 0, "took_ms"),
            rankers={str(k): str(v) for k, v in self.mapping(data.get("rankers") or {}, "rankers").items()},
            sort=str(data.get("sort") or "relevance"),
        )
        if results.total < len(hits):
            raise RemoteAnswerError(f"total {results.total} is fewer than the {len(hits)} results sent")
        answer = CatalogAnswer(results, makers=dict(results.rankers))
        for hit in hits:
            if hit.scores:
                answer.scores[hit.rowid] = dict(hit.scores)
        return answer

    def hit(self, entry, where: str) -> RemoteHit:
        data = self.mapping(entry, where)
        for name in ("item_type", "item_id", "title"):
            if not isinstance(data.get(name), str):
                raise RemoteAnswerError(f"{where}.{name} is not text")
        ranks = {
            str(k): (None if v is None else self.whole(v, f"{where}.ranks.{k}"))
            for k, v in self.mapping(data.get("ranks") or {}, f"{where}.ranks").items()
        }
        scores = {
            str(k): self.number(v, f"{where}.scores.{k}")
            for k, v in self.mapping(data.get("scores") or {}, f"{where}.scores").items()
        }
        proposal = data.get("proposal")
        return RemoteHit(
            item_type=data["item_type"],
            item_id=data["item_id"],
            rowid=self.whole(data.get("rowid", 0), f"{where}.rowid"),
            title=data["title"],
            snippet=data.get("snippet") if isinstance(data.get("snippet"), str) else "",
            score=self.number(data.get("score", 0), f"{where}.score"),
            why=[str(reason)[:300] for reason in self.listing(data, "why", where)],
            matched_tags=[_clean_tag(tag) for tag in self.listing(data, "matched_tags", where) if _is_tag(tag)],
            proposal=_clean_proposal(proposal),
            facts=_clean_facts(self.mapping(data.get("facts") or {}, f"{where}.facts")),
            ranks=ranks,
            scores=scores,
            facility=self.facility.name,
            facility_url=self.facility.url,
            remote_database=data.get("database") if isinstance(data.get("database"), str) else None,
            links={name: self.link(data.get(name), f"{where}.{name}") for name in _LINKS},
        )

    def facets(self, value) -> dict:
        facets = {}
        for name, entries in self.mapping(value, "facets").items():
            if not isinstance(entries, list):
                raise RemoteAnswerError(f"facets.{name} is not a list")
            facets[str(name)] = [
                {**entry, "count": self.whole(entry.get("count"), f"facets.{name}.count")}
                for entry in entries
                if isinstance(entry, dict) and isinstance(entry.get("value"), (str, int, float))
            ]
        return facets

    def link(self, value, where: str) -> str | None:
        """A link of the answer made absolute on the facility's base URL; one leading elsewhere is dropped."""
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise RemoteAnswerError(f"{where} is not a link")
        absolute = urllib.parse.urljoin(self.facility.url, value)
        base = urllib.parse.urlsplit(self.facility.url)
        target = urllib.parse.urlsplit(absolute)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            return None  # a result links to its own facility, never elsewhere
        return absolute

    @staticmethod
    def mapping(value, where: str) -> dict:
        if not isinstance(value, dict):
            raise RemoteAnswerError(f"{where} is not a JSON object")
        return value

    @staticmethod
    def listing(data: dict, name: str, where: str = "") -> list:
        value = data.get(name) or []
        if not isinstance(value, list):
            raise RemoteAnswerError(f"{where + '.' if where else ''}{name} is not a list")
        return value

    @staticmethod
    def whole(value, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RemoteAnswerError(f"{where} is not a whole number (got {str(value)[:40]!r})")
        return value

    @staticmethod
    def number(value, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RemoteAnswerError(f"{where} is not a number (got {str(value)[:40]!r})")
        return float(value)


# -- Asking ------------------------------------------------------------------------------------------------


def _nothing(query: str, item_type, page: int, per_page: int) -> CatalogAnswer:
    return CatalogAnswer(SearchResults(query, {}, item_type, page, per_page, 0, {}, [], {}, [], 0.0))


def remote_engines(
    client: httpx.AsyncClient, facilities: list[Facility], notices: list[Notice]
) -> dict[str, AsyncEngine]:
    """An engine per facility for ``federation.search_catalogs_async``: each asks the facility over HTTP
    (anonymously, local answers only) until its deadline, and on any failure adds a Notice to ``notices`` and
    answers nothing, once; the deadline starts now."""
    return {facility.name: _RemoteEngine(client, facility, notices) for facility in facilities}


class _RemoteEngine:
    def __init__(self, client: httpx.AsyncClient, facility: Facility, notices: list[Notice]):
        self.client, self.facility, self.notices = client, facility, notices
        self.deadline = time.monotonic() + facility.timeout_seconds
        self.failed = False

    async def __call__(self, query: str, *, item_type=None, page=1, per_page=20, mode=None, sort=None):
        if self.failed:
            return _nothing(query, item_type, page, per_page)
        # catalog: filters chose among the catalogs and facilities here; the facility searches all of its own.
        params = {"q": without_filter(query, "catalog"), "page": page, "per_page": per_page}
        params[SCOPE_PARAMETER] = LOCAL_ONLY
        params |= {name: value for name, value in (("type", item_type), ("mode", mode), ("sort", sort)) if value}
        try:
            answer = await asyncio.wait_for(self._ask(params), max(0.0, self.deadline - time.monotonic()))
            answer.results.hits = answer.results.hits[:per_page]  # no more than asked for, whatever was sent
            return answer
        except TimeoutError:
            problem = f"did not answer within {self.facility.timeout_seconds:g} s"
        except RemoteAnswerError as error:
            problem = error.message
        except httpx.ConnectError:
            problem = "refused the connection or could not be reached (is it running?)"
        except (httpx.HTTPError, httpx.InvalidURL, OSError, UnicodeError) as error:
            problem = f"could not be asked: {type(error).__name__} {str(error)[:200]}".strip()
        self.failed = True
        self.notices.append(Notice(self.facility.name, self.facility.url, problem))
        return _nothing(query, item_type, page, per_page)

    async def _ask(self, params: dict) -> CatalogAnswer:
        headers = {FORWARDED_HEADER: "fan-out", "Accept": "application/json"}
        # A stream read in parts, so a facility sending endless bytes is cut off at MAX_ANSWER_BYTES.
        async with self.client.stream("GET", self.facility.api_url, params=params, headers=headers) as response:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    break
            return parse_answer(self.facility, response.status_code, response.headers.get("content-type", ""), body)


def anonymous_client() -> httpx.AsyncClient:
    """A client that carries nothing of the visitor's: no cookies kept, no credentials, no redirects followed
    (a facility that moved says so in a notice rather than sending the request somewhere unlisted)."""
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=MAX_TIMEOUT_SECONDS)


def search_with_facilities(
    answers: dict[str, Callable[..., CatalogAnswer]], hub: Hub, query: str, **options
) -> tuple[FederatedResults, list[Notice]]:
    """Search outside a server (``scisearch search --facilities all``) as the search page does: the local
    catalogs' answers (name -> a ``catalog_answer`` that opens its catalog itself, since it runs in a worker
    thread) merged with every facility's, all asked at once; with the notices of the facilities that gave
    nothing.  A slow facility delays the answer by at most its timeout."""
    notices: list[Notice] = []

    def local(answer: Callable[..., CatalogAnswer]) -> AsyncEngine:
        async def run(text: str, **engine_options) -> CatalogAnswer:
            return await asyncio.to_thread(answer, text, **engine_options)

        return run

    async def everywhere() -> FederatedResults:
        engines = {name: local(answer) for name, answer in answers.items()}
        async with anonymous_client() as client:
            engines |= remote_engines(client, askable(hub.facilities, answers, notices), notices)
            return await search_catalogs_async(engines, query, served=len(engines), **options)

    return asyncio.run(everywhere()), notices
