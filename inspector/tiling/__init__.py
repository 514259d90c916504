from inspector.tiling.mask import TileMask
from inspector.tiling.tiler import TileGrid, Tiler

__all__ = ["TileGrid", "TileMask", "Tiler"]
