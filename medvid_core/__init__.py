"""medvid_core: the thin core behind the medvid study notebooks."""
__version__ = "0.1.0"
