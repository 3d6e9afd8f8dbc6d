"""What a fitted run is read with: importance-sampled evaluation (:mod:`~pyro_vaes.analysis.evaluation`), the
inference gaps (:mod:`~pyro_vaes.analysis.inference_gap`), guide comparison
(:mod:`~pyro_vaes.analysis.comparison`), attribute switching (:mod:`~pyro_vaes.analysis.switch`) and figures
(:mod:`~pyro_vaes.analysis.plots`)."""
