"""A small synthetic electron-microscopy facility on disk, to try scisearch without real data.

``build_facility(folder)`` (in ``facility``) plans sessions for the people and
proposals of ``programme``, renders each acquisition's picture from its
metadata (``scenes``, ``detector``) and writes it in its instrument's format
(``formats``), then writes the user log, proposals and papers around them.
"""

from .facility import Facility, build_facility

__all__ = ["Facility", "build_facility"]
