"""Loss forecasts from the scaling law with learning-rate annealing (Tissue et al., 2024; private).

One module per part of the method: :mod:`~optaxsched._forecast.law` (the two areas and the law's
prediction), :mod:`~optaxsched._forecast.fit` (fitting the law to runs) and
:mod:`~optaxsched._forecast.plan` (ranking schedules with a fitted law). Runs are read from files
by :func:`optaxsched.load_loss_curve` (:mod:`optaxsched._io`). The public names are attributes of
``optaxsched``.
"""
