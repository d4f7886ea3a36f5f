"""Search: one document per catalog item (``index``), the query language and the hybrid engine."""
