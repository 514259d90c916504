"""Camera sources: one kind per module (settings, source class and ``PLUGIN``).

:mod:`inspector.capture.sources.registry` finds the kinds, builds ``cameras[]``'s
union and creates a source for a camera's settings. This package imports nothing
itself, so a kind's module can import its shared helpers without a cycle.
"""
