"""Files and records into catalog rows: what a loader is, reading, normalising, previews, writing, linking.

- ``loader``: the contract a loader plugin implements (``FileLoader``, ``RecordLoader``, ``Dataset``);
- ``files``: walking folders and loading instrument files (``load_files``), in-process or on a Dask cluster;
- ``reading``: one file through its chain of readers (``read_file``), ``sandbox``: in a worker process;
- ``kinds``: the one vocabulary of kinds of data, and how each is decided;
- ``filerows``, ``normalize``, ``preview``: a loader's ``Dataset`` → a catalog row with UTC times, units, a PNG;
- ``records``: user-log sessions, proposals and papers (``load_records``);
- ``linking``: files to sessions, sessions and papers to proposals (``link_all``).
"""
