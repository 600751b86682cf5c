"""Deterministic synthetic datasets in the real on-disk formats, one module per assignment.

No dataset or pretrained weight can be downloaded where grading and CI run, so
each assignment's loaders are tested on small generated data: VOC XML + JPEG,
selective-search ``.mat`` proposals, colour-coded PNG masks, image folders.
"""
