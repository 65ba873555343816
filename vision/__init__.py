"""Pure computer vision, no network: detect -> track -> count over one ``Detections`` type."""
