"""Learning from experts and from searchers.

- ``train``: a head trained on frozen image features from experts' validated tags
  (``scisearch train``), its predictions written as ``learned:`` tags;
- ``active``: which items an expert should look at next (the learned head's doubt);
- ``clicks``: what the search log's clicks say about ranking, corrected for position
  bias (``scisearch learn``).
"""
