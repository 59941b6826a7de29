"""Tools built on the twins core: ``selftest`` (mutants the checks must catch), ``checkpoint``
(export and import of both twins' weights), ``drift`` (numbers across versions) and ``bench``
(trainer overhead against hand-written floors)."""
