"""Detector training: docTR DBNet on the page cache of ``ocrapp.training.data.pages``."""
