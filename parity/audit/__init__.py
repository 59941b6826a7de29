"""The claims audit: every claim the source documents make, re-measured (``claims``), and the
Bayes-optimal ceilings that say which targets are reachable at all (``bayes``)."""
