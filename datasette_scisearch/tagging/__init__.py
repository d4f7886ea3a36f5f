"""Catalog rows into tags and vectors: what a tagger is, the tagging pipeline, vector spaces, experts' changes.

- ``tagger``: the contract a tagger plugin implements (``Tagger``, ``Tag``, ``Vector``, ``Item``);
- ``items``: catalog items as taggers see them (pixels read again through their loader);
- ``pipeline``: runs the installed taggers over a catalog and stores what they say (``tag_catalog``);
- ``vectors``: the sqlite-vec table of each vector space;
- ``experts``: experts' accept / reject / edit / add / undo, each kept as history.
"""
