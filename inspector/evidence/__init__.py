"""The evidence sink's core: pictures of defects (:mod:`.pictures`) and the bounded,
indexed folder they are kept in (:mod:`.store`).

Nothing is imported here, so that a process that only needs the store (a tool reading the
index) does not load OpenCV.
"""
