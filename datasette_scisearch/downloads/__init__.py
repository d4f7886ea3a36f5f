"""Giving files back: the original files of a catalogued file (``originals``) and its array in other formats
(``exports``).  Nothing here knows about HTTP; ``web/downloads.py`` serves both."""
