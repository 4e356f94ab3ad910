"""The schedule family (private package): one module per schedule, named after it.

``linear_decay``, ``rex`` and ``uba`` need the run's length up front and share one assembler
(:mod:`optaxsched._schedules._assembly`); ``wsd`` (with WSD-S), ``power``, ``infinite`` and
``inverse_sqrt`` have a main phase that does not; ``tabulated`` interpolates a table. Every
schedule takes the optax count (0 on the first update; int32, int64, Python int or float; scalar
or array) and returns float32 of the same shape; all arguments are validated when the schedule is
built. The public names are attributes of ``optaxsched``; this package re-exports nothing, so that
no function shadows the module of the same name (``optaxsched._schedules.wsd`` is the module).
"""
