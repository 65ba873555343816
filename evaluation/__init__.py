"""Offline evaluation and ground-truth tools: they import vision to score it; vision never imports them."""
