"""Keywords: what a proposal, paper or session is about, in its own words, ranked by KeyBERT.

KeyBERT (Grootendorst, 2020) scores candidate phrases by the cosine similarity
of their embedding to the document's embedding, here with the same
all-MiniLM-L6-v2 instance the text_vectors tagger and the search engine use
(``KeyBERT()`` without a model would reach for a model hub).  Maximal marginal
relevance picks the keywords so that they are not near-duplicates of each
other.  The tags are inherited: the core copies a proposal's keywords to the
files and sessions linked to it, with a lower score.

Candidates are one- and two-word phrases that do not cross punctuation or a
stop word, so "imaging of batteries" gives "imaging" and "batteries", never
KeyBERT's default "imaging batteries".  Phrase embeddings are cached for the
run: a facility's proposals share much of their vocabulary.

Options under ``taggers: keybert:`` in metadata.yml: ``top_n`` (8),
``diversity`` (0.5), ``min_score`` (0.3), ``min_words`` (3), ``ignore_words``
(more words that never make a keyword on their own), ``model`` (a local
sentence-transformers folder, as for text_vectors).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.tagging.tagger import Item, Result, Tag, Tagger

from .helpers.model_options import count_option, number_option
from .text_vectors import clipped, embed_texts, sentence_model

# Words of grant and paper prose that say nothing about the science (proposal section headings,
# broader-impacts boilerplate); sklearn's English stop words are added to them.
GRANT_WORDS = frozenset(
    """abstract summary description technical non-technical nontechnical project projects proposal proposed
    research award funded funds nsf program programs student students undergraduate undergraduates graduate
    postdoctoral training education outreach community broader impacts impact intellectual merit using use
    used new novel study studies work understanding investigate investigation include including""".split()
)
# Anything that is neither a word character, a space nor a hyphen ends a phrase (all scripts' punctuation).
_PHRASE_BREAK = re.compile(r"[^\w\s\-]+")
_EVIDENCE = {
    "proposal": "keyword of the abstract",
    "paper": "keyword of the abstract",
    "session": "keyword of the notes",
}
_PHRASE_CACHE_LIMIT = 200_000


def candidate_phrases(text: str, stop_words: frozenset[str]) -> list[str]:
    """Each one- and two-word phrase in ``text`` that crosses no punctuation, stop word or number."""
    phrases: list[str] = []
    for chunk in _PHRASE_BREAK.split(text.lower()):
        run: list[str] = []
        for word in [*(token.strip("-_") for token in chunk.split()), ""]:
            if len(word) > 1 and word not in stop_words and not word.replace("-", "").isdigit():
                run.append(word)
                continue
            phrases += run
            phrases += [f"{first} {second}" for first, second in zip(run, run[1:])]
            run = []
    return phrases


def word_count(text: str) -> int:
    return len(text.split())


class KeywordTagger(Tagger):
    name = "keybert"
    version = "2"  # 2: tags name their category
    tag_category = "topic"  # what a proposal or paper is about
    description = "KeyBERT keywords (MiniLM, maximal marginal relevance) of proposals, papers and session notes"
    applies_to = frozenset({"proposal", "paper", "session"})
    inherited = True
    uses_gpu = True
    batch_size = 32

    def __init__(self) -> None:
        self.keybert = None
        self.model = None
        self.phrase_vectors: dict[str, np.ndarray] = {}

    def wants(self, item: Item) -> bool:
        return bool((item.text or "").strip())

    def load(self, options: dict[str, Any], device: str = "cpu") -> None:
        from keybert import KeyBERT
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        self.model = sentence_model(options.get("model"), device)
        self.keybert = KeyBERT(model=self.model)
        self.top_n = count_option(options, self.name, "top_n", 8, high=50)
        self.diversity = number_option(options, self.name, "diversity", 0.5, 0.0, 1.0)
        self.min_score = number_option(options, self.name, "min_score", 0.3, -1.0, 1.0)
        self.min_words = count_option(options, self.name, "min_words", 3)
        extra = {str(word).lower() for word in options.get("ignore_words") or []}
        self.stop_words = frozenset(ENGLISH_STOP_WORDS) | GRANT_WORDS | extra

    def tag_batch(self, items: list[Item]):
        texts = {item.key: clipped((item.text or "").strip(), 20_000) for item in items}
        worth = [item for item in items if word_count(texts[item.key]) >= self.min_words]
        keywords = self._keywords([texts[item.key] for item in worth]) if worth else []
        found = {item.key: ranked for item, ranked in zip(worth, keywords)}
        for item in items:
            # Short notes get few keywords: a ten-word note is about one or two things.
            allowed = min(self.top_n, max(1, word_count(texts[item.key]) // 12))
            ranked = found.get(item.key, [])[:allowed]
            evidence = _EVIDENCE.get(item.item_type, "keyword of the text")
            yield item, Result(tags=[Tag(phrase, round(score, 4), evidence) for phrase, score in ranked])

    def _keywords(self, docs: list[str]) -> list[list[tuple[str, float]]]:
        """KeyBERT's ranked keywords per document (MMR), those below ``min_score`` left out."""
        from sklearn.feature_extraction.text import CountVectorizer

        vectorizer = CountVectorizer(analyzer=lambda doc: candidate_phrases(doc, self.stop_words))
        try:
            phrases = list(vectorizer.fit(docs).get_feature_names_out())
        except ValueError:  # not one candidate in the whole batch (stop words only, one-letter words)
            return [[] for _ in docs]
        ranked = self.keybert.extract_keywords(
            docs,
            vectorizer=vectorizer,
            doc_embeddings=embed_texts(self.model, docs),
            word_embeddings=self._phrase_embeddings(phrases),
            use_mmr=True,
            diversity=self.diversity,
            top_n=self.top_n,
        )
        # KeyBERT answers a one-document call with that document's list rather than a list of lists.
        per_doc = [ranked] if len(docs) == 1 else ranked
        return [
            [(phrase, float(score)) for phrase, score in keywords if score >= self.min_score] for keywords in per_doc
        ]

    def _phrase_embeddings(self, phrases: list[str]) -> np.ndarray:
        missing = [phrase for phrase in phrases if phrase not in self.phrase_vectors]
        if len(self.phrase_vectors) + len(missing) > _PHRASE_CACHE_LIMIT:
            self.phrase_vectors.clear()
            missing = phrases
        if missing:
            self.phrase_vectors.update(zip(missing, embed_texts(self.model, missing, batch_size=256)))
        return np.stack([self.phrase_vectors[phrase] for phrase in phrases])

    def close(self) -> None:
        self.keybert = self.model = None
        self.phrase_vectors = {}


@hookimpl
def register_taggers(register):
    register(KeywordTagger())
