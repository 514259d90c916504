from inspector.tiling.mask import TileMask
from inspector.tiling.tiler import Tiler
from inspector.types.tiles import TileGrid

__all__ = ["TileGrid", "TileMask", "Tiler"]
