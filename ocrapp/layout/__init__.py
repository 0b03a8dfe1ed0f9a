"""Words -> lines -> blocks in reading order (pure numpy)."""

from ocrapp.layout.geometry import deskewed_boxes, estimate_skew
from ocrapp.layout.grouping import LayoutConfig, analyze_layout, reading_order

__all__ = ["LayoutConfig", "analyze_layout", "deskewed_boxes", "estimate_skew", "reading_order"]
