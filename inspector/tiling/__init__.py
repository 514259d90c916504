from inspector.tiling.tiler import TileGrid, Tiler

__all__ = ["TileGrid", "Tiler"]
