"""The catalogue: every model of the source documents (shared/seeds/) as one ``ModelSpec``
(``zoo``), with its datasets (``data``) — one way to build twins, on top of the core. The
core's checks and a full training run of a catalogue model live here too (``checks``, ``train``).
"""
