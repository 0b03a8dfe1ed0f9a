"""Input files (images, PDFs) -> page images, and atomic output writes."""

from ocrapp.io.atomic import atomic_write
from ocrapp.io.images import DEFAULT_MAX_PIXELS, load_image
from ocrapp.io.pages import PageSelection, parse_page_ranges
from ocrapp.io.sources import InputInfo, PageImage, discover_inputs, iter_pages, probe_input, sniff_kind

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "InputInfo",
    "PageImage",
    "PageSelection",
    "atomic_write",
    "discover_inputs",
    "iter_pages",
    "load_image",
    "parse_page_ranges",
    "probe_input",
    "sniff_kind",
]
