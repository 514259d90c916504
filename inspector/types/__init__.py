"""The data that crosses stages, at the bottom of the import graph: frames, tile grids,
model cards, inspected frames and verdicts. These modules import nothing of the stages
(capture, tiling, engines, pipeline, sinks); every stage may import them."""
