"""Analysis of runs against networks and training sets.

- :mod:`.compare` — sample-by-sample agreement of final images (Pearson r, r², cosine, MSE);
- :mod:`.nearest` — memorisation: nearest training image, copies;
- :mod:`.mosaic` — patch-mosaic maps from provenance, local consistency (Theorem 4.1);
- :mod:`.scan`, :mod:`.scan_merge`, :mod:`.aggregate`, :mod:`.calibrate` — locality calibration against a
  network's trajectory: scan the candidate sizes, merge the shards' scans, aggregate into a
  :class:`~elscli.schedule.LocalitySchedule`, and all three end to end (``locality-scan``);
- :mod:`.sweep` — the constant-P sweep: memorisation versus creativity;
- :mod:`.consistency` — spatial inconsistency: topology of line images scored under the bank's own
  distribution, agreement with a network, the locality sweep (figures in :mod:`.consistency_plots`);
- :mod:`.plots` — the figures (matplotlib, Agg backend).
"""
